"""Small shared helpers: seeding, atomic file output, run metadata, progress bars.

This is the lowest room of the house: it imports nothing else from kdexplain.
"""

from kdexplain.utils.io import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    read_json,
    write_json,
)
from kdexplain.utils.progress import progress
from kdexplain.utils.runinfo import environment_info, git_revision
from kdexplain.utils.seed import derive_seed, seed_everything

__all__ = [
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "derive_seed",
    "environment_info",
    "git_revision",
    "progress",
    "read_json",
    "seed_everything",
    "write_json",
]
