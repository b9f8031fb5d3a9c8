"""Atomic file output: a file is either absent or complete, never half-written.

Everything is written to a temporary file in the destination's folder and moved into
place with :func:`os.replace`, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

#: The name :func:`atomic_write_bytes` gives its temporary files: ``.<name>.<random>.tmp``.
_TMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


def _umask() -> int:
    # os.umask can only be read by setting it; restore at once (single-threaded call sites)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; create parent folders. Returns the path.

    The file gets the mode of a plain ``open(path, "w")`` under the current umask (0644
    under the usual 022), so other users can read a shared cache or run folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file with mode 0600; give it the mode a plain open() would
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def jsonable(obj: Any) -> Any:
    """``obj`` as the builtins of strict JSON (the one policy of every JSON file written).

    Mappings -> dicts with string keys; lists and tuples -> lists; numpy scalars -> Python
    numbers; arrays and tensors -> nested lists; NaN and infinities -> ``None`` (``null``:
    JSON has no NaN); anything else that is not a builtin -> its ``str``.
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (bool, int, float, str)):
        return jsonable(obj.tolist())  # numpy scalars and arrays, tensors
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, strictly valid JSON (:func:`jsonable`), atomically."""
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True,
                                              allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing file raises ``FileNotFoundError`` naming it, a broken one
    :class:`UnreadableFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the JSON file {path}, which does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnreadableFileError(f"{path} is not valid JSON ({e}); delete it (it is "
                                  "rewritten by the command that made it) or repair it", path) from None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (an interrupted save leaves the old file intact)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


class UnreadableFileError(ValueError):
    """A file that kdexplain cannot (or will not) read: empty, truncated, corrupt, or holding
    Python objects that only an unrestricted unpickler could rebuild.

    ``path`` names the file; the message says what was wrong and what to do.
    """

    def __init__(self, message: str, path: str | os.PathLike) -> None:
        super().__init__(message)
        self.path = Path(path)


_UNSAFE_HINT = ("kdexplain loads torch files with weights_only=True and never runs code from a "
                "file. If you trust its source, re-save only its state dict (tensors and plain "
                "data) from the code that made it, and load that file")


def load_torch_file(path: str | os.PathLike, *, what: str = "file",
                    map_location: str | torch.device = "cpu") -> Any:
    """Read a ``torch.save`` file without ever unpickling code (``weights_only=True``).

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages (``"checkpoint"``, ``"sweep unit"``, ...).
    map_location : str or torch.device

    Returns
    -------
    The stored object: tensors and plain Python data (dicts, lists, numbers, strings).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    UnreadableFileError
        The file is empty, truncated or corrupt, or it holds Python objects (classes,
        functions, arbitrary ``__reduce__`` payloads) that a safe load refuses; the payload
        never runs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise UnreadableFileError(f"{what} {path} is empty (an interrupted copy or save?); "
                                  "delete it and recreate it", path)
    try:
        with warnings.catch_warnings():
            # random bytes read as a legacy pickle announce an odd protocol first; the error
            # below says what is wrong, so the warning would only be noise
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise UnreadableFileError(
                f"{what} {path} holds Python objects ({found.group(1)}), not only tensors and "
                f"plain data; refusing to load it. {_UNSAFE_HINT}", path) from None
        raise UnreadableFileError(f"{what} {path} is not a readable torch file (corrupt or not "
                                  "written by torch.save); delete it and recreate it", path) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UnreadableFileError(f"{what} {path} is truncated or corrupt ({first}); delete it "
                                  "and recreate it", path) from None
    except Exception as e:  # noqa: BLE001 - the safe unpickler fails on garbage in many ways
        # bytes that are neither a torch zip archive nor a pickle: the weights-only unpickler
        # can stop with IndexError, KeyError, struct.error, ... on an opcode it cannot use
        raise UnreadableFileError(f"{what} {path} is not a readable torch file (corrupt or not "
                                  f"written by torch.save: {type(e).__name__}); delete it and "
                                  "recreate it", path) from None


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the hidden ``.NAME.*.tmp`` files that an interrupted atomic write leaves behind
    (under ``folder``, recursively). Call it only while holding the folder's lock.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.rglob(".*.tmp"):
        if p.is_file() and _TMP_NAME.match(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Fail early, before any compute, when ``folder`` cannot receive files.

    ``folder`` may not exist yet (then its nearest existing parent must be a writable
    folder). Raises ``NotADirectoryError`` or ``PermissionError`` with a message naming it.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(f"the {what} {folder} cannot be created: {probe} is a file; "
                                 "choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"the {what} {folder} is not writable ({probe} does not allow "
                              "writing for this user); choose another path or fix its permissions")
    return folder
