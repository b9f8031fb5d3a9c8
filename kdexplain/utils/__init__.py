"""Small shared helpers: seeding, atomic file output, run metadata, progress bars.

This is the lowest room of the house: it imports nothing else from kdexplain.
"""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".io": [
        "UnreadableFileError", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text",
        "check_writable_folder", "jsonable", "load_torch_file", "read_json", "remove_stale_temporaries",
        "write_json",
    ],
    ".lock": ["FolderLockedError", "folder_lock"],
    ".progressbar": ["progress"],
    ".runinfo": ["environment_info", "git_revision"],
    ".seed": ["derive_seed", "deterministic", "flush_denormals", "seed_everything"],
})
