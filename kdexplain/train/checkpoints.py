"""kdexplain checkpoints: writing, finding and loading them.

A checkpoint is a dict saved with ``torch.save`` holding at least ``model`` (the state
dict), ``optimizer``, ``scheduler``, ``epoch``, ``global_step``, ``phase``, ``arch``,
``num_classes``, ``model_kwargs``, ``layer`` (the resolved module path of the analysed
layer), ``role`` and ``rng`` (random-number-generator states, one per process). Kept
checkpoints of a model's analysed phase are ``<model_dir>/checkpoints/epoch_XXXX.pt``;
other phases (the teacher's pre-training, the student's phase 2) keep theirs in
``<model_dir>/checkpoints/<phase>/``. ``<model_dir>/last.pt`` is the newest state, written
after every epoch, from which ``--resume`` continues.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdexplain.models import model_for_state
from kdexplain.utils.io import load_torch_file

__all__ = [
    "capture_rng",
    "checkpoint_path",
    "list_checkpoints",
    "load_checkpoint",
    "restore_rng",
]

_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


def checkpoint_path(model_dir: str | Path, epoch: int, phase_dir: str | None = None) -> Path:
    """``<model_dir>/checkpoints[/<phase_dir>]/epoch_XXXX.pt``."""
    base = Path(model_dir) / "checkpoints"
    if phase_dir:
        base = base / phase_dir
    return base / f"epoch_{epoch:04d}.pt"


def list_checkpoints(model_dir: str | Path, phase: str | None = None) -> list[tuple[int, Path]]:
    """The kept checkpoints of one model, sorted by epoch.

    Parameters
    ----------
    model_dir : str or Path
        ``RUN_DIR/teacher``, ``RUN_DIR/student`` or ``RUN_DIR/baseline``.
    phase : str, optional
        ``None``: the analysed phase (the teacher's fine-tuning, the baseline's training, the
        student's phase 1). ``"pretrain"`` or ``"phase2"``: the checkpoints of that phase.

    Returns
    -------
    list of (epoch, path)
    """
    folder = Path(model_dir) / "checkpoints"
    if phase:
        folder = folder / phase
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: expected the checkpoints of a model trained by "
            "`kdexplain train-triplet` (RUN_DIR/<teacher|student|baseline>/checkpoints/)")
    found = []
    for p in folder.iterdir():
        m = _EPOCH_FILE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint.

    Parameters
    ----------
    path : str or Path
        A kdexplain checkpoint file.
    map_location : str or torch.device
        Where tensors are loaded; the model is moved there too.

    Returns
    -------
    model : nn.Module
        Built with ``build_model(arch, num_classes, **model_kwargs)``, weights loaded, in
        evaluation mode, ``model.kdexplain_arch`` set.
    checkpoint : dict
        The whole checkpoint (``epoch``, ``phase``, ``layer``, ``role``, ...).
    """
    path = Path(path)
    ckpt = load_torch_file(path, what="checkpoint", map_location=map_location)
    missing = [k for k in ("model", "arch", "num_classes") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not a kdexplain checkpoint (missing {', '.join(missing)}); "
                         "for a plain state dict use kdexplain.models.load_model(path, arch=...)")
    model_kwargs = ckpt.get("model_kwargs", {})
    if not isinstance(model_kwargs, dict):
        raise ValueError(f"{path}: model_kwargs must be a mapping, got "
                         f"{type(model_kwargs).__name__}")
    model = model_for_state(ckpt["arch"], ckpt["num_classes"], model_kwargs, ckpt["model"], path)
    model.to(map_location)
    return model.eval(), ckpt


def capture_rng() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) generators, as tensors and
    plain Python data only, so that a checkpoint loads with ``weights_only=True``."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": str(name), "key": torch.from_numpy(key.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore generator states taken by :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    if isinstance(n, dict):
        np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["gauss"]))
    else:  # a checkpoint written before the generator states were stored as plain data
        np.random.set_state(n)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
