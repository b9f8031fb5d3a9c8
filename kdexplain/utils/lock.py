"""An exclusive lock per folder, so two processes never write one run at the same time.

Two ``kdexplain run`` commands started in the same folder would otherwise both append
their rows to the same CSV files. :func:`folder_lock` takes ``FOLDER/.kdexplain.lock``
with ``fcntl.flock`` (released by the kernel when the process dies, so a killed run never
leaves a stale lock) and refuses at once, with a clear message, when another process holds
it. It is re-entrant within a process: the pipeline, the training and the sweep may each
take the lock of the same folder. A folder that the lock created and that holds nothing
else when it is released (a command failed before writing) is removed again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, no protection
    fcntl = None

__all__ = ["FolderLockedError", "LOCK_NAME", "folder_lock"]

LOCK_NAME = ".kdexplain.lock"

# folder -> (fd, depth, created, leave_no_file) in this process
_held: dict[Path, tuple[int, int, bool, bool]] = {}
_guard = threading.Lock()


class FolderLockedError(OSError):
    """Another process holds the folder's lock."""


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run", *,
                leave_no_file: bool = False) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if needed) for the ``with`` block.

    Parameters
    ----------
    folder : str or Path
    what : str
        What the folder holds, for the message (``"run"``, ``"sweep"``).
    leave_no_file : bool
        Remove the lock file when the outermost block ends (for folders that users commit,
        such as a report's). Taken from the outermost block.

    Raises
    ------
    FolderLockedError
        Another process is working in ``folder``; its process id is in the message.
    """
    folder = Path(folder).resolve()
    with _guard:
        if folder in _held:
            fd, depth, created, remove = _held[folder]
            _held[folder] = (fd, depth + 1, created, remove)
        else:
            created = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True)
            fd = _acquire(folder, what)
            _held[folder] = (fd, 1, created, leave_no_file)
    try:
        yield folder
    finally:
        with _guard:
            fd, depth, created, remove = _held[folder]
            if depth > 1:
                _held[folder] = (fd, depth - 1, created, remove)
            else:
                del _held[folder]
                if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                    # a command that failed before writing anything leaves no folder behind
                    (folder / LOCK_NAME).unlink(missing_ok=True)
                    folder.rmdir()
                elif remove:  # removed while still held: no other process has it
                    (folder / LOCK_NAME).unlink(missing_ok=True)
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _acquire(folder: Path, what: str) -> int:
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        finally:
            os.close(fd)
        raise FolderLockedError(
            f"{folder} is in use by {owner}: another kdexplain command is writing this {what}. "
            "Wait for it to finish (or stop it), or choose another name / folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
    return fd
