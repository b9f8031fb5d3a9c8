"""Reading a device name the way a user writes it, with a clear error for the wrong ones."""

from __future__ import annotations

import re

import torch

__all__ = ["resolve_device"]

_FORM = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def resolve_device(name: str | torch.device | None, what: str = "--device") -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` -> a device.

    Parameters
    ----------
    name : str, torch.device or None
        None means ``"auto"``.
    what : str
        Where the user wrote it, for the message (``--device``, ``device``).

    Raises
    ------
    ValueError
        An unknown name, or a GPU that this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m = _FORM.match(name)
    if not m:
        raise ValueError(f"{what}: unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what} {name}: torch sees no CUDA GPU on this machine "
                             f"(torch {torch.__version__}); use auto or cpu")
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ValueError(f"{what} {name}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    if kind == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ValueError(f"{what} {name}: MPS is not available here; use auto or cpu")
    return torch.device(name)
