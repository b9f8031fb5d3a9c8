"""What the pipeline tests share: a tiny config that trains in seconds, and the sweep units
of a run (the session's trained run is the ``trained_run`` fixture in tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

TINY = {
    "name": "tinypipe",
    "seed": 0,
    "device": "cpu",
    "data": {"name": "scenes", "image_size": 32, "options": {"images_per_class": 6}},
    "model": {"arch": "kdnet", "kwargs": {"width": 4, "hidden": 16}, "layer": "fc1"},
    "teacher": {"epochs": 2},
    "student": {"mode": "feature", "phase1_epochs": 2, "phase2_epochs": 1},
    "baseline": {"epochs": 2},
    "optim": {"batch_size": 32, "lr": 0.01},
    "checkpoints": [0, 1, 2],
    "analysis": {"n_images": 4, "steps": 6, "samples": 4, "grid": 8},
}


def write_config(tmp: Path, **changes) -> Path:
    """``TINY`` with ``changes``, its runs under ``tmp/runs``, written to ``tmp/tiny.yaml``."""
    cfg = {**TINY, "out_dir": str(tmp / "runs"), **changes}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def copy_without_sweep(run: Path, dest: Path) -> Path:
    """A copy of the trained ``run`` at ``dest``, without its sweep folder."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("sweep"))
    return dest


def units(run: Path) -> dict[str, torch.Tensor]:
    """Each sweep unit's sigma grid, by its path under ``run``."""
    return {str(p.relative_to(run)): torch.load(p, weights_only=True)["sigma"]
            for p in sorted((run / "sweep").glob("*/epoch_*.pt"))}
