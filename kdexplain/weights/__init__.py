"""Weights that ship with kdexplain, like torchvision's: generated artefacts, each with a
record beside it (``<name>.json``: the command and the resolved config that made it, its
sha256 and its accuracies).

A config names one with ``teacher.pretrained: kdexplain:<name>``; :func:`resolve_weights`
turns that into the file's path. ``python -m kdexplain.train.shipped`` makes them.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

__all__ = ["PREFIX", "resolve_weights", "sha256_of", "shipped_names"]

#: How a config names shipped weights: ``kdexplain:<name>``.
PREFIX = "kdexplain:"


def _folder() -> Path:
    return Path(str(resources.files("kdexplain.weights")))


def shipped_names() -> list[str]:
    """The names of the weights that ship with this install (``<name>.pt`` files)."""
    return sorted(p.stem for p in _folder().glob("*.pt"))


def resolve_weights(value: str | Path) -> Path:
    """The path of a weights file: ``kdexplain:<name>`` is a shipped file, anything else a
    path as given.

    Raises
    ------
    FileNotFoundError
        A ``kdexplain:`` name that does not ship (the message lists the ones that do).
    """
    text = str(value)
    if not text.startswith(PREFIX):
        return Path(text)
    name = text[len(PREFIX):]
    path = _folder() / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped weights named {name!r}; kdexplain ships "
                                f"{', '.join(shipped_names()) or 'none'}")
    return path


def sha256_of(path: str | Path) -> str:
    """The sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
