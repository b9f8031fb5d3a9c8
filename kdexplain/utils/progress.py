"""Progress bars for long work (tqdm: rate and ETA)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Iterable | None = None, *, desc: str = "", total: int | None = None,
             enable: bool | None = None, unit: str = "it", **kwargs: Any) -> tqdm:
    """A tqdm bar with kdexplain's defaults.

    ``enable=None`` shows the bar when stderr is a terminal or ``KDEXPLAIN_PROGRESS=1``,
    and hides it when ``KDEXPLAIN_PROGRESS=0`` (for logs and CI).
    """
    if enable is None:
        env = os.environ.get("KDEXPLAIN_PROGRESS")
        enable = (env == "1") if env is not None else sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, disable=not enable, unit=unit,
                dynamic_ncols=True, **kwargs)
