"""Training: losses, the triplet (teacher, student, baseline), checkpoints, trajectories."""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".checkpoints": ["list_checkpoints", "load_checkpoint"],
    ".distributed": ["DistContext", "scaled_lr"],
    ".epoch": ["NonFiniteLossError"],
    ".features": ["TruncatedModel", "check_feature_shapes", "upstream_parameters"],
    ".loop": ["ModelTrainer"],
    ".losses": [
        "distillation_loss", "feature_distillation_loss", "logit_l2_loss", "soft_target_loss",
        "softmax_t",
    ],
    ".optim": ["LrFactor", "build_optimizer", "build_scheduler"],
    ".phase": ["Phase"],
    ".trajectory": ["WeightTrajectory", "path_length", "weight_distances"],
    ".run_folder": ["format_summary"],
    ".triplet": ["run_dir_for", "train_all_seeds", "train_triplet"],
})
