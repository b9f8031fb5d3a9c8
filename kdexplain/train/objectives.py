"""The training objectives of a phase, one small class each (as mdistiller's distillers).

An objective takes the trained network's output and, when it needs one, the frozen
teacher's output on the same batch, and returns the loss. It says whether it needs the
teacher, whether its network's output are logits (so that an accuracy is defined), and
whether it works on the feature of the analysed layer rather than on logits (then both
networks are truncated at that layer). The losses themselves are in
:mod:`kdexplain.train.losses` (docs/method.md section 1 and 2).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kdexplain.train.losses import distillation_loss, feature_distillation_loss, logit_l2_loss

__all__ = ["OBJECTIVES", "CrossEntropy", "FeatureMSE", "LogitL2", "Objective", "SoftTarget",
           "make_objective"]


class Objective:
    """Base class: ``objective(net, teacher, x, y) -> (loss, logits or None)``.

    Attributes
    ----------
    name : str
        The config's name of the objective (``Phase.objective``).
    needs_teacher : bool
        The loss compares with the teacher's output.
    has_accuracy : bool
        The network's output are class logits (an accuracy is reported).
    feature_level : bool
        Student and teacher are truncated at the analysed layer (their outputs are features).
    """

    name: ClassVar[str] = ""
    needs_teacher: ClassVar[bool] = True
    has_accuracy: ClassVar[bool] = True
    feature_level: ClassVar[bool] = False

    def loss(self, out: torch.Tensor, teacher_out: torch.Tensor | None,
             y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The loss of a batch: ``out`` (B, ...) of the trained network, ``teacher_out`` the
        teacher's (same shape) or None, ``y`` (B,) the labels."""
        raise NotImplementedError

    def __call__(self, net: nn.Module, teacher: nn.Module | None, x: torch.Tensor,
                 y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = net(x)
        t = None
        if self.needs_teacher:
            with torch.no_grad():
                t = teacher(x).float()
        return self.loss(out.float(), t, y), (out if self.has_accuracy else None)


class CrossEntropy(Objective):
    """Cross-entropy on the labels (the teacher, the baseline, the student's phase 2)."""

    name = "ce"
    needs_teacher = False

    def loss(self, out, teacher_out, y):
        return F.cross_entropy(out, y)


class FeatureMSE(Objective):
    """Phase 1 of Cheng et al.: MSE to the teacher's pre-activation output of layer L."""

    name = "feature"
    has_accuracy = False
    feature_level = True

    def loss(self, out, teacher_out, y):
        return feature_distillation_loss(out, teacher_out)


class SoftTarget(Objective):
    """Hinton's loss ``a T^2 KL(q_T(v) || q_T(z)) + (1 - a) CE(y, q_1(z))``.

    Parameters
    ----------
    temperature : float
        T.
    soft_weight : float
        a, the weight of the soft term.
    """

    name = "soft"

    def __init__(self, temperature: float, soft_weight: float) -> None:
        self.temperature = float(temperature)
        self.soft_weight = float(soft_weight)

    def loss(self, out, teacher_out, y):
        return distillation_loss(out, teacher_out, y, self.temperature, self.soft_weight)


class LogitL2(Objective):
    """Logit regression (Ba & Caruana): L2 between zero-meaned logits (Hinton's high-T limit)."""

    name = "logit_l2"

    def loss(self, out, teacher_out, y):
        return logit_l2_loss(out, teacher_out)


_CLASSES: dict[str, type[Objective]] = {c.name: c for c in (CrossEntropy, FeatureMSE,
                                                              SoftTarget, LogitL2)}
#: The objective names a phase may use.
OBJECTIVES: tuple[str, ...] = tuple(_CLASSES)


def make_objective(name: str, temperature: float | None = None,
                   soft_weight: float | None = None) -> Objective:
    """The objective called ``name`` (one of :data:`OBJECTIVES`); ``soft`` needs
    ``temperature`` and ``soft_weight`` (the config's ``student.temperature`` and
    ``student.soft_weight``, where their defaults are defined)."""
    if name not in _CLASSES:
        raise ValueError(f"unknown objective {name!r}; one of {', '.join(OBJECTIVES)}")
    if name == "soft":
        if temperature is None or soft_weight is None:
            raise ValueError("the soft objective needs temperature and soft_weight "
                             "(student.temperature, student.soft_weight)")
        return SoftTarget(temperature, soft_weight)
    return _CLASSES[name]()
