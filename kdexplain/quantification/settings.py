"""Settings of a quantification: the resolved options, and the named presets.

A preset is a :class:`QuantifySettings`; :func:`resolve_settings` applies the user's
overrides and checks them. Which optimiser a preset uses is one field (``optimizer``); the
optimisers themselves are in :mod:`kdexplain.quantification.optimizers`.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, replace
from typing import Literal

from kdexplain.quantification.features import FEATURE_TRANSFORMS

__all__ = ["PRESETS", "QuantifySettings", "default_entropy_weight", "resolve_settings"]


def default_entropy_weight(arch: str | None) -> float:
    """The original's ``lambda_H``: 6 for ResNets, 7 otherwise (VGG, AlexNet, kdnet)."""
    return 6.0 if arch and arch.startswith("resnet") else 7.0


@dataclass(frozen=True)
class QuantifySettings:
    """Resolved settings of one quantification (a preset plus the user's overrides).

    Attributes
    ----------
    preset : "default", "paper", "adam" or "reference"
    optimizer : "newton_log" (stochastic Newton steps on log sigma from a closed-form start),
        "adam_log" (Adam on log sigma) or "sgd_clamp" (SGD on raw sigma clamped to
        ``clamp``, the original).
    steps : int
        Maximum optimisation steps.
    min_steps : int
        ``newton_log``: steps every unit takes before the precision test (below ``steps``,
        ``steps`` itself).
    precision : float or None
        ``newton_log``: a unit stops once the median over its cells of the estimated
        standard error of log sigma (:attr:`QuantifyResult.log_sigma_se`) is at most this
        (after ``min_steps``); None (a preset's choice; an override of None is ignored,
        so pass ``min_steps=steps`` for a fixed number of steps): every unit runs ``steps``
        steps. With it, ``D0`` also takes more samples where it is not known to a relative
        error of ``precision / 2`` (up to 16 times ``d0_samples``). A standard error
        ``s`` of log sigma puts sigma within about ``0.67 s`` of the optimum in half of
        the cells.
    samples : int
        Noise samples per step (S).
    d0_samples : int
        Noise samples for the normaliser D0.
    lr : float
        Learning rate (of log sigma for ``adam_log``; of sigma for ``sgd_clamp``).
    entropy_weight : float or None
        ``lambda_H``; None = by architecture (:func:`default_entropy_weight`).
    probes : int
        ``newton_log``: vector-Jacobian products (Hutchinson probes, at inputs perturbed with
        ``sigma_init``) that estimate the per-cell sensitivities of the closed-form start.
    start_weight : float
        ``newton_log``: the weight of the closed-form start in the running average of the
        Newton targets, in steps (0: the first step replaces the start). The start has
        little noise but the bias of the linearisation; the steps the reverse.
    sigma_init : float
        Initial sigma, and the sigma of the normaliser D0 (``sigma0``).
    feature_transform : "relu" or "identity"
        Applied to the layer's output before comparing (the original uses ReLU).
    clamp : (float, float)
        Bounds of sigma (``sgd_clamp`` clamps every step; ``adam_log`` bounds log sigma).
    patience : int
        ``adam_log``: window (steps) of the plateau test and of the iterate average that is
        returned.
    plateau : float
        ``adam_log``: a unit is on a plateau when the mean over cells of the change of its
        window-averaged log sigma between two consecutive windows is below
        ``plateau * patience * lr_unit`` (a steadily moving unit changes by about
        ``patience * lr_unit``; a noise-dominated one by much less).
    lr_decay : float
        ``adam_log``: on a plateau the unit's learning rate is multiplied by this.
    min_lr_factor : float
        ``adam_log``: a unit stops (converged) once its learning rate would fall below
        ``min_lr_factor * lr``.
    entropy_weight_step : int or None
        ``sgd_clamp``: the step after which the original either stops (mean entropy has
        exceeded ``target_entropy``) or multiplies the entropy weight (lambda_H) by
        ``entropy_weight_factor``.
    entropy_weight_factor : float
        That multiplier (original: 1.5).
    target_entropy : float or None
        Keep the iterate whose mean entropy is closest to it (original: -2.8). None: keep
        the final (averaged) iterate.
    stop_past_target : bool
        With ``target_entropy``: a unit stops at the first recorded iterate whose mean
        entropy exceeds the target. The original runs on (to step 60 or 80), but while the
        mean entropy rises, as it does on its descent path, the later iterates lie farther
        from the target and are never kept, so the kept iterate is the same.
    control_variate : bool
        Subtract from every sampled distortion its linearisation at the clean image
        (``mean_d (J v)_d^2`` for the sample's perturbation ``v``, a forward-mode product)
        and add back that linearisation's exact expectation ``sum_i sigma_i^2 c_i / dim``
        (``c_i`` from one vector-Jacobian product per feature dimension). Unbiased; the
        sampling noise that is left is the nonlinear part's. For narrow features: it costs
        ``dim`` input gradients per image and checkpoint and two more passes per sample
        (3.7x the time of the same samples without it at kdnet's fc1), and a chunk of
        rows about twice the memory (lower ``max_batch`` on a GPU
        that runs short); the checkpoints then run one after another, never stacked.
    """

    preset: str = "default"
    optimizer: Literal["newton_log", "adam_log", "sgd_clamp"] = "newton_log"
    steps: int = 15
    min_steps: int = 15
    precision: float | None = None
    samples: int = 16
    d0_samples: int = 64
    probes: int = 10
    start_weight: float = 3.0
    lr: float = 0.1
    entropy_weight: float | None = None
    sigma_init: float = 0.01
    feature_transform: Literal["relu", "identity"] = "relu"
    clamp: tuple[float, float] = (1e-4, 10.0)
    patience: int = 10
    plateau: float = 0.25
    lr_decay: float = 0.5
    min_lr_factor: float = 0.125
    entropy_weight_step: int | None = None
    entropy_weight_factor: float = 1.5
    target_entropy: float | None = None
    stop_past_target: bool = False
    control_variate: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, QuantifySettings] = {
    # A closed-form start (10 probes), then stochastic Newton steps of 16 samples until the
    # median standard error of log sigma is <= 0.045 (sigma within about 3 % of the optimum in
    # half of the cells; at 0.06 kdnet's fc1 landed 4.7-5.4 % from it): 15 steps (250
    # sample-passes) on a wide feature, about 500 on kdnet's fc1, 1,500 on a 7-logit
    # classifier, at most 150 steps (2,410); benchmarks/bench_estimators.py measures it.
    "default": QuantifySettings(steps=150, precision=0.045),
    # The original's descent path and kept iterate (the reference preset's rule) with 16
    # samples per step instead of 96, stopped once the target entropy is passed (about 40
    # steps, 640 sample-passes instead of 5,760-7,680); docs/method.md section 3.4.
    "paper": QuantifySettings(
        preset="paper", optimizer="sgd_clamp", probes=0, start_weight=0.0, steps=80,
        samples=16, d0_samples=96, lr=1e-4, clamp=(1e-3, 1.0), patience=1,
        entropy_weight_step=59, target_entropy=-2.8, stop_past_target=True),
    # Adam on log sigma, a decaying step and a convergence stop (the previous default).
    "adam": QuantifySettings(preset="adam", optimizer="adam_log", steps=100, probes=0,
                             start_weight=0.0),
    # The original algorithm (docs/method.md section 3), step for step.
    "reference": QuantifySettings(
        preset="reference", optimizer="sgd_clamp", probes=0, start_weight=0.0, steps=80, samples=96, d0_samples=96,
        lr=1e-4, clamp=(1e-3, 1.0), patience=1, entropy_weight_step=59,
        target_entropy=-2.8),
}


def resolve_settings(preset: str | QuantifySettings = "default", /, **overrides
                     ) -> QuantifySettings:
    """A preset (a name of :data:`PRESETS`, or settings already made) with the given
    overrides (``None`` values are ignored), checked.

    Raises
    ------
    TypeError
        An override that is no :class:`QuantifySettings` field (the message lists them).
    ValueError
        An unknown preset, or a value out of range.
    """
    if isinstance(preset, QuantifySettings):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    fields = QuantifySettings.__dataclass_fields__
    unknown = set(overrides) - set(fields)
    if unknown:
        raise TypeError(f"unknown quantify setting(s) {', '.join(sorted(unknown))}; the "
                        f"settings are {', '.join(fields)}")
    if "preset" in overrides:
        raise TypeError("preset chooses the settings to start from, it cannot override them: "
                        "give a preset or settings, not both")
    for key, value in overrides.items():
        default = getattr(base, key)
        if (isinstance(default, int) and not isinstance(default, bool)
                and (isinstance(value, bool) or not isinstance(value, numbers.Integral))):
            raise ValueError(f"{key} must be a whole number, got {value!r}")
    s = replace(base, **overrides)
    if s.feature_transform not in FEATURE_TRANSFORMS:
        raise ValueError(f"feature_transform must be one of {', '.join(FEATURE_TRANSFORMS)}, "
                         f"got {s.feature_transform!r}")
    for key in ("steps", "min_steps", "samples", "d0_samples"):
        if getattr(s, key) < 1:
            raise ValueError(f"{key} must be at least 1, got {getattr(s, key)}")
    if s.precision is not None and not s.precision > 0:
        raise ValueError(f"precision must be positive (or None), got {s.precision}")
    if s.optimizer not in ("newton_log", "adam_log", "sgd_clamp"):
        raise ValueError(f"optimizer must be 'newton_log', 'adam_log' or 'sgd_clamp', "
                         f"got {s.optimizer!r}")
    if s.probes < 0 or (s.optimizer == "newton_log" and s.probes < 1):
        raise ValueError(f"probes must be >= 1 for the newton_log optimizer, got {s.probes}")
    if not s.sigma_init > 0:
        raise ValueError(f"sigma_init must be > 0, got {s.sigma_init}")
    if s.entropy_weight is not None and not s.entropy_weight > 0:
        raise ValueError(f"entropy_weight (lambda_H) must be positive, got {s.entropy_weight}")
    return s
