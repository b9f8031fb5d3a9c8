"""Optimisers and learning-rate schedules of the config's ``optim`` section.

Schedules are per epoch (the rate is constant within an epoch), as in the paper:

- ``loglinear``: epoch ``i`` (0-based) of ``E`` uses ``lr * 10**(-i / (E - 1))``, i.e. the
  rate falls log-linearly by one decade from the first to the last epoch;
- ``cosine``: ``lr * (1 + cos(pi * i / E)) / 2``;
- ``constant``: ``lr``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from kdexplain.config import OptimConfig
from kdexplain.vocabulary import OPTIMIZERS, SCHEDULES

__all__ = ["LrFactor", "build_optimizer", "build_scheduler"]


class LrFactor:
    """The multiplier of the base rate at epoch ``i`` (a picklable callable for ``LambdaLR``)."""

    def __init__(self, schedule: str, epochs: int) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; choose {', '.join(SCHEDULES)}")
        self.schedule = schedule
        self.epochs = int(epochs)

    def __call__(self, i: int) -> float:
        if self.schedule == "constant" or self.epochs <= 1:
            return 1.0
        i = min(i, self.epochs - 1)
        if self.schedule == "loglinear":
            return 10.0 ** (-i / (self.epochs - 1))
        return 0.5 * (1.0 + math.cos(math.pi * i / self.epochs))


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig,
                    lr: float) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or Adam (weight decay) over ``params`` at rate ``lr``."""
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters")
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimiser {cfg.name!r}; choose {', '.join(OPTIMIZERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str,
                    epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch ``LambdaLR`` following ``schedule`` over ``epochs`` epochs."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LrFactor(schedule, epochs))
