import sys

from kdexplain.cli import main

sys.exit(main())
