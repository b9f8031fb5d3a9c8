"""Settings of the spurious-background validation and the experiment configs they produce.

One :class:`SpuriousConfig` fixes everything the numbers depend on: the ``scenes`` data
(classes, sizes, generation seed), the two values of ``spurious_background`` that are
compared, the training of the networks, the analysed image sets and the quantification.
:func:`make_config` gives the two shipped modes (``default`` and ``quick``);
:func:`experiment_config` turns one (condition, seed) into a validated
:class:`kdexplain.config.ExperimentConfig` for :func:`kdexplain.train.train_triplet`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from kdexplain.config import ExperimentConfig, parse_config

__all__ = ["CONDITIONS", "SpuriousConfig", "condition_name", "experiment_config", "make_config"]

#: The layer named in the training config (whose weight path the triplet records).
TRAINING_LAYER = "fc1"

#: The two trainings compared: background untied (``neutral``) and tied (``spurious``).
CONDITIONS = ("neutral", "spurious")


@dataclass(frozen=True)
class SpuriousConfig:
    """Everything that determines the validation's numbers.

    Attributes
    ----------
    mode : str
        ``"default"`` or ``"quick"`` (only a label).
    classes : tuple of str
        The ``scenes`` classes, in label order. Class position ``c`` is tied to background
        photo family ``c`` (``scenes`` ties family ``c mod 10``).
    image_size : int
        Side of the images in pixels.
    train_per_class, val_per_class, test_per_class : int
        Images per class of the training split, of the validation split (monitored during
        training) and of the test split (accuracies and the analysed images).
    data_seed : int
        Generation seed of ``scenes``: the same images for every training seed.
    data_root : str or None
        Data root of the ``scenes`` cache; None = ``kdexplain.data.default_data_root()``.
    spurious_background : float
        ``p`` of the ``spurious`` condition: the probability that an image's background
        family is the one tied to its class. The ``neutral`` condition uses ``p = 0``.
    seeds : tuple of int
        Training seeds; each seed trains one network per condition. Both networks of a seed
        start from the same initial weights. The seed is the unit of replication: the
        default 8 let the exact sign-flip test over seeds reach p = 0.0078, enough for a
        Holm-corrected verdict in a family of 4 metrics (2 seeds can never give one).
    epochs : int
        Training epochs of each network.
    checkpoints : tuple of int
        Kept checkpoint epochs (0 and ``epochs`` are always kept).
    analysed_epochs : tuple of int or None
        Checkpoints that are quantified; None = ``(0, epochs)``. Epoch 0 is the shared
        initialisation: the control where both conditions are the same network.
    arch : str
    model_kwargs : dict
        kdnet options (width, hidden, dropout).
    optimizer, lr, weight_decay, batch_size, schedule
        The training step (see :class:`kdexplain.config.OptimConfig`).
    device : {"auto", "cpu", "cuda"}
    layers : tuple of str
        Layers quantified (module paths or the paper's aliases ``conv``, ``fc1``, ...).
    images_per_set : int
        Analysed images in each of the two image sets (``tied`` and ``neutral``).
    grid : int
        Cells per side of the perturbation grid (g).
    samples, steps : int or None
        Noise samples per step and maximum steps of the quantification (None: the engine's
        ``default`` preset values, 16 and 100).
    quantify_seed : int
        Seed of the quantification's noise streams (each image's stream is keyed by its
        name, so every network sees the same noise on the same image).
    concept_threshold : float
        ``b`` of docs/method.md section 4 (nats).
    baseline_entropy : {"pooled", "per_image"}
        How ``H_bar`` is taken (docs/method.md section 4: pooled over the analysed images, per network).
    mask_rule : {"fraction", "nearest"}
        How the pixel mask becomes the grid's foreground.
    """

    mode: str = "default"
    classes: tuple[str, ...] = ("bird", "elephant", "giraffe")
    image_size: int = 64
    train_per_class: int = 400
    val_per_class: int = 40
    test_per_class: int = 100
    data_seed: int = 0
    data_root: str | None = None
    spurious_background: float = 0.9
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    epochs: int = 10
    checkpoints: tuple[int, ...] = (0, 2, 5, 10)
    analysed_epochs: tuple[int, ...] | None = None
    arch: str = "kdnet"
    model_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"width": 8, "hidden": 128, "dropout": 0.3})
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    schedule: str = "loglinear"
    device: str = "auto"
    layers: tuple[str, ...] = ("fc1",)
    images_per_set: int = 16
    grid: int = 16
    samples: int | None = 8
    steps: int | None = None
    quantify_seed: int = 0
    concept_threshold: float = 0.2
    baseline_entropy: str = "pooled"
    mask_rule: str = "fraction"

    def __post_init__(self) -> None:
        if len(self.classes) < 2:
            raise ValueError(f"classes: give at least 2 scenes classes, got {list(self.classes)}")
        if len(self.classes) > 10:
            raise ValueError("classes: scenes has 10 background families, so at most 10 "
                             f"classes can each have their own tied family; got {len(self.classes)}")
        if not 0.0 < self.spurious_background <= 1.0:
            raise ValueError(f"spurious_background must be in (0, 1] (the neutral condition "
                             f"is p = 0), got {self.spurious_background}")
        if not self.seeds:
            raise ValueError("seeds: give at least one training seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {list(self.seeds)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        bad = [e for e in self.quantified_epochs() if e not in self.kept_epochs()]
        if bad:
            raise ValueError(f"analysed_epochs {bad} are not kept checkpoints "
                             f"{list(self.kept_epochs())}; add them to checkpoints")
        if self.images_per_set < 1:
            raise ValueError(f"images_per_set must be >= 1, got {self.images_per_set}")
        if not self.layers:
            raise ValueError("layers: give at least one layer, e.g. ('fc1',)")

    def kept_epochs(self) -> tuple[int, ...]:
        """The checkpoint epochs training keeps: ``checkpoints`` within range, 0 and the last."""
        return tuple(sorted({e for e in self.checkpoints if 0 <= e <= self.epochs}
                            | {0, self.epochs}))

    def quantified_epochs(self) -> tuple[int, ...]:
        """The checkpoint epochs that are quantified (``analysed_epochs`` or ``(0, epochs)``)."""
        eps = self.analysed_epochs if self.analysed_epochs is not None else (0, self.epochs)
        return tuple(sorted(set(eps)))

    def p_of(self, condition: str) -> float:
        """``spurious_background`` of a condition: 0 for ``neutral``, ``p`` for ``spurious``."""
        if condition not in CONDITIONS:
            raise ValueError(f"unknown condition {condition!r}; one of {', '.join(CONDITIONS)}")
        return 0.0 if condition == "neutral" else float(self.spurious_background)

    def to_dict(self) -> dict[str, Any]:
        """Plain (YAML/JSON-able) form: tuples become lists."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def make_config(quick: bool = False, **overrides: Any) -> SpuriousConfig:
    """The shipped settings: ``default`` (<= ~10 min on 2 CPU cores) or ``quick`` (~1-2 min).

    Parameters
    ----------
    quick : bool
        Fewer training images and epochs, fewer analysed images, shorter quantification.
    **overrides
        Field values of :class:`SpuriousConfig` that replace the mode's.
    """
    cfg = SpuriousConfig()
    if quick:
        cfg = replace(cfg, mode="quick", seeds=(0, 1), train_per_class=100, val_per_class=10,
                      test_per_class=30, epochs=3, checkpoints=(0, 1, 3), images_per_set=4,
                      steps=30)
    return replace(cfg, **overrides) if overrides else cfg


def condition_name(condition: str, seed: int) -> str:
    """The run's folder name, e.g. ``spurious-seed1``."""
    return f"{condition}-seed{seed}"


def experiment_config(cfg: SpuriousConfig, condition: str, seed: int,
                      out_dir: str | Path) -> ExperimentConfig:
    """The kdexplain experiment config that trains one network of the validation.

    Only the baseline role (labels only, from scratch) is trained; the teacher and the
    student get zero epochs, so :func:`kdexplain.train.train_triplet` merely records their
    initial state. Both conditions of a seed start from the same initial weights (the
    triplet's ``scratch`` initialisation depends only on the seed).

    Parameters
    ----------
    cfg : SpuriousConfig
    condition : {"neutral", "spurious"}
    seed : int
        Training seed (initialisation and shuffling).
    out_dir : str or Path
        Parent folder of the run directory (``out_dir / condition_name(condition, seed)``).
    """
    raw = {
        "name": condition_name(condition, seed),
        "seed": int(seed),
        "device": cfg.device,
        "out_dir": str(out_dir),
        "data": {
            "name": "scenes",
            "root": cfg.data_root,
            "image_size": cfg.image_size,
            "options": {"images_per_class": cfg.train_per_class,
                        "val_per_class": cfg.val_per_class,
                        "seed": cfg.data_seed,
                        "spurious_background": cfg.p_of(condition),
                        "classes": list(cfg.classes)},
            "preload": True,
        },
        # The layer only names the weight trajectory the triplet records; it does not change
        # the baseline's training, so it is fixed (quantifying other layers reuses the runs).
        "model": {"arch": cfg.arch, "kwargs": dict(cfg.model_kwargs), "layer": TRAINING_LAYER},
        "teacher": {"pretrained": None, "pretrain_epochs": 0, "epochs": 0},
        "student": {"mode": "feature", "phase1_epochs": 0, "phase2_epochs": 0},
        "baseline": {"epochs": cfg.epochs},
        "optim": {"name": cfg.optimizer, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                  "batch_size": cfg.batch_size, "schedule": cfg.schedule},
        "checkpoints": list(cfg.kept_epochs()),
        "analysis": {"n_images": cfg.images_per_set, "split": "test", "models": ["baseline"],
                     "grid": cfg.grid, "samples": cfg.samples, "steps": cfg.steps,
                     "concept_threshold": cfg.concept_threshold,
                     "baseline_entropy": cfg.baseline_entropy, "mask_rule": cfg.mask_rule},
    }
    return parse_config(raw, source=f"spurious {condition} seed {seed}")
