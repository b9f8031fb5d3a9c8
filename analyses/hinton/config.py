"""Settings of the Hinton reproduction: one frozen config, three presets.

``full`` is what ``reports/hinton/`` was generated with (all seven analyses in roughly
10-15 minutes on two CPU cores, MNIST-5k); ``quick`` keeps every analysis at a minute or
two (two seeds, a few epochs) for CI and for a first look; ``paper`` (``--protocol paper``)
is the paper's protocol at full size: every training image of Fashion-MNIST or MNIST
(60 000) as the teacher's training set and as the transfer set, five seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from analyses.hinton.nets import NetConfig

#: Bumped whenever training or evaluation changes, so cached runs of older code are not reused.
CODE_VERSION = 1


@dataclass(frozen=True)
class HintonConfig:
    """Everything that determines the numbers of the seven analyses.

    Attributes
    ----------
    mode : str
        ``"full"``, ``"quick"`` or ``"paper"`` (the preset this config came from).
    dataset : str
        Key of :func:`kdexplain.data.digits.load_digits` (``mnist5k`` by default).
    train_size, test_size : int or None
        Stratified subset sizes for large data sets (``None`` = all).
    seeds : tuple of int
        Every number is a mean +- std over these seeds (teacher and students re-trained).
    teacher : NetConfig
        The large regularised net (paper: 2x1200, dropout, jitter of up to 2 pixels; the
        quick preset regularises less so that few epochs suffice).
    student : NetConfig
        The small net of the headline experiment and of the missing-class experiment
        (paper: 2x800, no regularisation).
    wide, narrow : NetConfig
        The two widths of the temperature sweep (paper: ">= 300 units" and "30 units").
    weighting_student : NetConfig
        The net of the hard-weight x temperature grid.
    distill_temperature : float
        T of the headline distillation (paper: 20).
    soft_weight : float
        Weight ``a`` of the soft term; ``1 - a`` weights the hard-label cross-entropy.
    sweep_temperatures : tuple of float
        Temperatures of the small-net sweep.
    entropy_temperatures, gradient_temperatures : tuple of float
        Temperatures of the entropy curve and of the high-temperature-limit curve.
    example_temperatures : tuple of float
        Columns of the temperature-softmax table.
    missing_class : int
        The class left out of the transfer set (paper: 3).
    kept_classes : tuple of int
        The only classes of the second transfer set (paper: 7 and 8).
    holdout_per_class : int
        Training images per class kept out of every transfer set of the missing-class
        analysis; the label-free bias rules look at them (never at the test set).
    bias_min, bias_max, bias_step : float
        Grid of the test-time bias sweep.
    weighting_hard_weights : tuple of float
        Hard-label weights ``1 - a`` of the weighting grid (1.0 = labels only).
    weighting_temperatures : tuple of float
    consistent_teachers : tuple of str
        Teacher presets (:data:`TEACHER_PRESETS`) of the consistent-teaching analysis, or
        ``"own"`` for ``teacher``.
    consistent_student : NetConfig
        The student of consistent teaching (the small net's size, a longer schedule).
    consistent_temperature, consistent_soft_weight, consistent_mixup : float
        T, ``a`` and the mixup Beta parameter (0 = none) of consistent teaching.
    consistent_jitter : int or None
        Largest shift (pixels) of the view teacher and student share; ``None``: each
        teacher's own training jitter (a teacher trained without shifts, such as
        ``nojitter``, then gives views without any).
    ensemble_size : int
        Label-trained small nets per seed averaged into the ensemble teacher.
    ensemble_temperature, ensemble_soft_weight : float
        T and ``a`` of distilling the ensemble into one small net.
    """

    mode: str = "full"
    dataset: str = "mnist5k"
    train_size: int | None = None
    test_size: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    # As in the paper: dropout on inputs and hidden units, inputs jittered by up to 2
    # pixels. The "light" teacher (TEACHER_PRESETS) is the alternative measured in
    # reports/hinton/teacher-light/.
    teacher: NetConfig = NetConfig(hidden=1200, input_dropout=0.2, hidden_dropout=0.5, jitter=2,
                                   epochs=30)
    # Unregularised students converge in 10 epochs at 3e-3 (as good as 20 at 1e-3).
    student: NetConfig = NetConfig(hidden=800, epochs=10, lr=3e-3)
    wide: NetConfig = NetConfig(hidden=300, epochs=10, lr=3e-3)
    # 30-unit nets need many more steps (at 1e-3 and 20 epochs they under-fit, and then
    # every T looks alike); they are cheap.
    narrow: NetConfig = NetConfig(hidden=30, epochs=40, lr=3e-3)
    weighting_student: NetConfig = NetConfig(hidden=300, epochs=10, lr=3e-3)
    distill_temperature: float = 20.0
    soft_weight: float = 0.9
    sweep_temperatures: tuple[float, ...] = (1.0, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0)
    entropy_temperatures: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0,
                                               30.0, 50.0, 100.0)
    gradient_temperatures: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0,
                                                200.0, 500.0, 1000.0)
    example_temperatures: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
    missing_class: int = 3
    kept_classes: tuple[int, ...] = (7, 8)
    holdout_per_class: int = 40
    bias_min: float = -15.0
    bias_max: float = 12.0
    bias_step: float = 0.1
    weighting_hard_weights: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.9, 1.0)
    weighting_temperatures: tuple[float, ...] = (2.0, 5.0, 20.0)
    consistent_teachers: tuple[str, ...] = ("paper", "light")
    consistent_student: NetConfig = NetConfig(hidden=800, epochs=40, lr=3e-3)
    consistent_temperature: float = 1.0
    consistent_soft_weight: float = 1.0
    consistent_mixup: float = 0.0
    consistent_jitter: int | None = None
    ensemble_size: int = 10
    ensemble_temperature: float = 20.0
    ensemble_soft_weight: float = 0.9

    def as_dict(self) -> dict:
        """JSON-able view (nested NetConfigs become dicts)."""
        return asdict(self)


#: Teachers by name and mode. "paper": the paper's regularisation (dropout about 0.2 on the
#: inputs and 0.5 on the hidden units, 2-pixel jitter); "light": dropout 0.1 / 0.3 and
#: 1-pixel jitter, which converges in fewer epochs and is more confident; "nojitter": light's
#: dropout without jitter (for Fashion-MNIST, whose centred garments a fully connected net
#: does not fit well once shifted: there the paper's teacher is worse than the unregularised
#: small net). Each mode's default is marked in :func:`default_teacher`.
TEACHER_PRESETS = {
    ("paper", "full"): NetConfig(hidden=1200, input_dropout=0.2, hidden_dropout=0.5, jitter=2,
                                 epochs=30),
    ("light", "full"): NetConfig(hidden=1200, input_dropout=0.1, hidden_dropout=0.3, jitter=1,
                                 epochs=20, lr=2e-3),
    ("paper", "quick"): NetConfig(hidden=1200, input_dropout=0.2, hidden_dropout=0.5, jitter=2,
                                  epochs=10, lr=2e-3),
    ("light", "quick"): NetConfig(hidden=1200, input_dropout=0.1, hidden_dropout=0.3, jitter=1,
                                  epochs=10, lr=2e-3),
    ("nojitter", "full"): NetConfig(hidden=1200, input_dropout=0.1, hidden_dropout=0.3,
                                    jitter=0, epochs=20, lr=2e-3),
    ("nojitter", "quick"): NetConfig(hidden=1200, input_dropout=0.1, hidden_dropout=0.3,
                                     jitter=0, epochs=10, lr=2e-3),
}

#: The teacher presets' names, in the order the help lists them.
TEACHER_NAMES = tuple(dict.fromkeys(name for name, _ in TEACHER_PRESETS))


#: In ``consistent_teachers``: the config's own ``teacher`` rather than a named preset.
OWN_TEACHER = "own"


def default_teacher(quick: bool) -> str:
    """Name of the mode's default teacher preset: ``paper`` (full) or ``light`` (quick)."""
    return "light" if quick else "paper"


def teacher_preset(name: str, quick: bool = False) -> NetConfig:
    """The teacher :class:`NetConfig` called ``name`` (one of :data:`TEACHER_NAMES`) for a mode."""
    key = (name, "quick" if quick else "full")
    if key not in TEACHER_PRESETS:
        raise ValueError(f"unknown teacher preset {name!r}; choose one of "
                         f"{', '.join(TEACHER_NAMES)}")
    return TEACHER_PRESETS[key]


def full_config(**overrides) -> HintonConfig:
    """The preset used for the committed reports (five seeds)."""
    return replace(HintonConfig(), **overrides)


def quick_config(**overrides) -> HintonConfig:
    """A cheap preset: two seeds, few epochs, coarse sweeps (each analysis ~1-2 min)."""
    base = HintonConfig(
        mode="quick",
        seeds=(0, 1),
        # lighter regularisation than the full teacher, so that 10 epochs give a teacher
        # clearly better than the students (the paper's dropout needs ~30 epochs)
        teacher=TEACHER_PRESETS[("light", "quick")],
        student=NetConfig(hidden=800, epochs=5, lr=3e-3),
        wide=NetConfig(hidden=300, epochs=5, lr=3e-3),
        narrow=NetConfig(hidden=30, epochs=20, lr=3e-3),
        weighting_student=NetConfig(hidden=300, epochs=5, lr=3e-3),
        sweep_temperatures=(1.0, 3.0, 8.0, 20.0),
        gradient_temperatures=(1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
        entropy_temperatures=(0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0),
        weighting_hard_weights=(0.0, 0.1, 0.5, 1.0),
        weighting_temperatures=(2.0, 20.0),
        bias_step=0.25,
        consistent_student=NetConfig(hidden=800, epochs=10, lr=3e-3),
        ensemble_size=4,
    )
    return replace(base, **overrides)


#: The presets by name (``--protocol``); ``quick=True`` is the same as ``protocol="quick"``.
PROTOCOLS = ("full", "quick", "paper")


def paper_config(**overrides) -> HintonConfig:
    """The paper's protocol at full size (five seeds, all 60 000 training images).

    Teacher 2x1200 with dropout 0.2 / 0.5 on inputs / hidden units, trained on inputs
    jittered by up to 2 pixels (a fresh random shift per image, per epoch); the transfer
    set of the distilled students is the whole (unjittered) training set. With 60 000
    images an epoch has 15 times the optimiser steps of an MNIST-5k epoch, so fewer epochs
    are needed than in ``full`` (15 teacher epochs are 9000 steps against 1200); the epoch
    counts keep the whole protocol (distillation + missing-class) at about 100 minutes of
    one CPU core (see ``benchmarks/bench_hinton_epoch.py``). The missing-class rules get
    100 held-out images per class.
    """
    base = HintonConfig(
        mode="paper",
        train_size=None,
        test_size=None,
        teacher=NetConfig(hidden=1200, input_dropout=0.2, hidden_dropout=0.5, jitter=2,
                          epochs=15),
        student=NetConfig(hidden=800, epochs=5, lr=3e-3),
        wide=NetConfig(hidden=300, epochs=5, lr=3e-3),
        narrow=NetConfig(hidden=30, epochs=10, lr=3e-3),
        weighting_student=NetConfig(hidden=300, epochs=5, lr=3e-3),
        holdout_per_class=100,
        consistent_student=NetConfig(hidden=800, epochs=15, lr=3e-3),
    )
    return replace(base, **overrides)


def with_epochs(cfg: HintonConfig, epochs: int) -> HintonConfig:
    """``cfg`` with every net trained for ``epochs`` epochs (a smoke test of a protocol)."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    nets = ("teacher", "student", "wide", "narrow", "weighting_student", "consistent_student")
    return replace(cfg, **{n: replace(getattr(cfg, n), epochs=epochs) for n in nets})


def make_config(quick: bool = False, protocol: str | None = None, **overrides) -> HintonConfig:
    """A preset with ``overrides`` (``None`` values are ignored).

    Parameters
    ----------
    quick : bool
        ``quick_config`` instead of ``full_config``.
    protocol : {"full", "quick", "paper"}, optional
        The preset by name; wins over ``quick``.
    **overrides
        Fields of :class:`HintonConfig`.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    protocol = protocol or ("quick" if quick else "full")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    preset = {"full": full_config, "quick": quick_config, "paper": paper_config}[protocol]
    cfg = preset(**overrides)
    validate(cfg)
    return cfg


def validate(cfg: HintonConfig) -> None:
    """Raise ``ValueError`` naming the setting when a value cannot work."""
    if not cfg.seeds:
        raise ValueError("seeds is empty: give at least one seed (two or more for a spread)")
    if not 0.0 <= cfg.soft_weight <= 1.0:
        raise ValueError(f"soft_weight must lie in [0, 1], got {cfg.soft_weight}")
    if cfg.missing_class in cfg.kept_classes:
        raise ValueError(f"missing_class {cfg.missing_class} must not be one of kept_classes "
                         f"{cfg.kept_classes}")
    if cfg.bias_step <= 0 or cfg.bias_min >= cfg.bias_max:
        raise ValueError(f"bias grid needs bias_min < bias_max and bias_step > 0, got "
                         f"{cfg.bias_min}, {cfg.bias_max}, {cfg.bias_step}")
    if not 0 < cfg.holdout_per_class:
        raise ValueError(f"holdout_per_class must be > 0, got {cfg.holdout_per_class}")
    for name in ("sweep_temperatures", "entropy_temperatures", "gradient_temperatures",
                 "example_temperatures", "weighting_temperatures"):
        temps = getattr(cfg, name)
        if not temps or min(temps) <= 0:
            raise ValueError(f"{name} must be a non-empty list of positive temperatures, "
                             f"got {temps}")
    for name in cfg.consistent_teachers:
        if name != OWN_TEACHER:
            teacher_preset(name)  # names the presets on a typo
    if cfg.ensemble_size < 2:
        raise ValueError(f"ensemble_size must be at least 2, got {cfg.ensemble_size}")
    for name in ("consistent_soft_weight", "ensemble_soft_weight"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {getattr(cfg, name)}")
    if cfg.consistent_jitter is not None and cfg.consistent_jitter < 0:
        raise ValueError(f"consistent_jitter must be >= 0 pixels, got {cfg.consistent_jitter}")
    if cfg.consistent_mixup < 0:
        raise ValueError(f"consistent_mixup must be >= 0, got {cfg.consistent_mixup}")
    for w in cfg.weighting_hard_weights:
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"weighting_hard_weights must lie in [0, 1], got {w}")
