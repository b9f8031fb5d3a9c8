"""Small shared helpers: seeding, atomic file output, run metadata, progress bars.

This is the lowest room of the house: it imports nothing else from kdexplain.
"""

from kdexplain.utils.io import (
    UnreadableFileError,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    check_writable_folder,
    load_torch_file,
    read_json,
    remove_stale_temporaries,
    write_json,
)
from kdexplain.utils.lock import FolderLockedError, folder_lock
from kdexplain.utils.progress import progress
from kdexplain.utils.runinfo import environment_info, git_revision
from kdexplain.utils.seed import derive_seed, deterministic, seed_everything

__all__ = [
    "FolderLockedError",
    "UnreadableFileError",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable_folder",
    "derive_seed",
    "deterministic",
    "environment_info",
    "folder_lock",
    "git_revision",
    "load_torch_file",
    "progress",
    "read_json",
    "remove_stale_temporaries",
    "seed_everything",
    "write_json",
]
