"""A training phase (:class:`Phase`) and the state it holds while it trains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from kdexplain.config import OptimConfig
from kdexplain.train.features import TruncatedModel
from kdexplain.train.objectives import OBJECTIVES, Objective
from kdexplain.train.trajectory import WeightTrajectory

__all__ = ["EpochResult", "Phase", "PhaseRun"]


@dataclass
class Phase:
    """One training phase of a model.

    Attributes
    ----------
    name : str
        ``pretrain``, ``finetune``, ``train``, ``phase1`` or ``phase2``.
    epochs : int
        Epochs of the phase (0: only the epoch-0 state is recorded).
    objective : str
        ``ce`` (cross-entropy on labels), ``feature`` (MSE to the teacher's feature at the
        layer), ``soft`` (Hinton's loss), ``logit_l2`` (L2 on zero-meaned logits).
    train_set, val_set : Dataset
        Items as ``kdexplain.data`` yields them (dicts with ``image`` and ``label``).
    num_classes : int
        The head size during this phase.
    optim : OptimConfig
        Optimiser settings of the phase (role overrides applied).
    keep : set of int
        Epochs whose checkpoints are kept (the last epoch is added).
    subdir : str or None
        ``None``: checkpoints go to ``checkpoints/`` (the analysed phase); else to
        ``checkpoints/<subdir>/``.
    tracked : bool
        Record the weight trajectory of the analysed layer during this phase.
    freeze : {"none", "above", "upstream"}
        ``above``: train only the parameters the layer's output depends on (phase 1);
        ``upstream``: freeze those and train the rest (phase 2).
    prepare : callable, optional
        ``model -> model`` applied when the phase starts fresh (e.g. a new head).
    """

    name: str
    epochs: int
    objective: str
    train_set: Dataset
    val_set: Dataset | None
    num_classes: int
    optim: OptimConfig
    keep: set[int] = field(default_factory=set)
    subdir: str | None = None
    tracked: bool = False
    freeze: str = "none"
    prepare: Callable[[nn.Module], nn.Module] | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; one of {OBJECTIVES}")
        if self.freeze not in ("none", "above", "upstream"):
            raise ValueError(f"unknown freeze {self.freeze!r}")
        self.keep = {e for e in self.keep if 0 <= e <= self.epochs} | {0, self.epochs}


@dataclass
class EpochResult:
    """What one epoch of training returns: mean loss, accuracy (None for a feature loss),
    images seen, seconds."""

    loss: float
    acc: float | None
    images: int
    seconds: float


@dataclass
class PhaseRun:
    """The state of one phase while it trains (what its helpers share)."""

    phase: Phase
    model: nn.Module
    net: nn.Module                 # the trained network (truncated at L for a feature loss)
    teacher_fn: nn.Module | None   # the frozen teacher, truncated likewise
    objective: Objective
    ddp: nn.Module                 # ``net``, wrapped in DistributedDataParallel under torchrun
    params: list[nn.Parameter]
    flags: dict[str, bool]         # requires_grad before the phase (restored by close)
    frozen_modules: list[nn.Module]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    autocast: Callable[[], Any]
    traj: WeightTrajectory | None
    sampler: DistributedSampler
    train_loader: DataLoader
    val_loader: DataLoader | None
    dist_rows: list[dict] = field(default_factory=list)
    timing: dict = field(default_factory=lambda: {"train_images": 0, "train_seconds": 0.0,
                                                  "seconds": 0.0})

    @property
    def fields(self) -> tuple[list[str], list[str]]:
        """Column names of ``trajectory.csv`` and ``weight_distance.csv``."""
        return self.traj.fieldnames() if self.traj is not None else ([], [])

    def set_train_mode(self) -> None:
        self.model.train()
        for m in self.frozen_modules:
            m.eval()

    def close(self) -> None:
        """Remove the truncation hooks and restore every parameter's ``requires_grad``."""
        for m in (self.net, self.teacher_fn):
            if isinstance(m, TruncatedModel):
                m.remove()
        for n, p in self.model.named_parameters():
            p.requires_grad_(self.flags[n])
