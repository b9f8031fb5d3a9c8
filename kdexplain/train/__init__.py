"""Training: losses, the triplet (teacher, student, baseline), checkpoints, trajectories."""

from kdexplain.train.checkpoints import list_checkpoints, load_checkpoint
from kdexplain.train.distributed import DistContext, scaled_lr
from kdexplain.train.features import (
    TruncatedModel,
    check_feature_shapes,
    upstream_parameters,
)
from kdexplain.train.loop import ModelTrainer, NonFiniteLossError, Phase
from kdexplain.train.losses import (
    distillation_loss,
    feature_distillation_loss,
    logit_l2_loss,
    soft_target_loss,
    softmax_t,
)
from kdexplain.train.optim import LrFactor, build_optimizer, build_scheduler
from kdexplain.train.trajectory import WeightTrajectory, path_length, weight_distances
from kdexplain.train.triplet import (
    ROLES,
    format_summary,
    run_dir_for,
    train_all_seeds,
    train_triplet,
)

__all__ = [
    "ROLES",
    "DistContext",
    "LrFactor",
    "ModelTrainer",
    "NonFiniteLossError",
    "Phase",
    "TruncatedModel",
    "WeightTrajectory",
    "build_optimizer",
    "build_scheduler",
    "check_feature_shapes",
    "distillation_loss",
    "feature_distillation_loss",
    "format_summary",
    "list_checkpoints",
    "load_checkpoint",
    "logit_l2_loss",
    "path_length",
    "run_dir_for",
    "scaled_lr",
    "soft_target_loss",
    "softmax_t",
    "train_all_seeds",
    "train_triplet",
    "upstream_parameters",
    "weight_distances",
]
