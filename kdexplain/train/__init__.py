"""Training: losses, the triplet (teacher, student, baseline), checkpoints, trajectories."""

from kdexplain.train.losses import (
    distillation_loss,
    feature_distillation_loss,
    logit_l2_loss,
    soft_target_loss,
    softmax_t,
)

__all__ = [
    "distillation_loss",
    "feature_distillation_loss",
    "logit_l2_loss",
    "soft_target_loss",
    "softmax_t",
]
