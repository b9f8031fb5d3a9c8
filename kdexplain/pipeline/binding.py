"""What ties a sweep's (or a calibration's) unit to the network and the images it measured.

A unit's settings fingerprint says *how* it was computed; it does not say *from what*. A
unit also records its ``role`` and ``epoch``, the SHA-256 of the checkpoint file it
quantified (``checkpoint_sha256``) and of the analysed images (``images_sha256``). A unit
whose record disagrees with the checkpoint now in the run (the models were retrained, a
unit was copied over another, a sweep folder came from another run) is recomputed by
``kdexplain sweep`` and named by ``kdexplain report``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

__all__ = ["binding_problem", "file_sha256", "tensor_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 (hex) of a tensor's dtype, shape and values (CPU, contiguous)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def binding_problem(unit: dict, role: str, epoch: int, checkpoint_sha256: str,
                    images_sha256: str | None = None) -> str | None:
    """Why ``unit`` is not the measurement of this checkpoint, or None when it is.

    Parameters
    ----------
    unit : dict
        A stored unit (``role``, ``epoch``, ``checkpoint_sha256``, ``images_sha256``).
    role, epoch : the unit's place in the run
    checkpoint_sha256 : str
        The hash of the checkpoint file the unit should have quantified.
    images_sha256 : str, optional
        The hash of the images it should have quantified (not checked when None).
    """
    if unit.get("role") != role or unit.get("epoch") != epoch:
        return (f"it holds the {unit.get('role')} at epoch {unit.get('epoch')}, not the "
                f"{role} at epoch {epoch}")
    if "checkpoint_sha256" not in unit:
        return "it records no checkpoint hash (made by an older kdexplain)"
    if unit["checkpoint_sha256"] != checkpoint_sha256:
        return "it was computed from another checkpoint than the run's (retrained or copied)"
    if images_sha256 is not None and unit.get("images_sha256") != images_sha256:
        return "it was computed on other images than the sweep's images.pt"
    return None
