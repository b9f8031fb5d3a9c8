"""From the entropy grids of one or several runs to the three hypotheses' numbers and verdicts.

The sweep hands over one :class:`RunEntropies` per trained run (seed);
:func:`analyze_concepts` selects the images, computes the concepts of every model, summarises
each metric over images and seeds with bootstrap intervals, and tests S against B.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from kdexplain.concepts.metrics import (
    DEFAULT_CONCEPT_THRESHOLD,
    DEFAULT_LATE_FRACTION,
    ModelConcepts,
    effective_images,
    model_concepts,
    region_means,
    usable_images,
)
from kdexplain.concepts.stats import (
    INCONCLUSIVE,
    BootstrapCI,
    bootstrap_ci,
    holm,
    hypothesis_verdict,
    metric_verdict,
    min_seed_p_value,
    paired_bootstrap_ci,
    paired_test,
    seed_paired_test,
    spread_test,
)
from kdexplain.vocabulary import ALL_ROLES, ROLES

__all__ = [
    "HYPOTHESES",
    "METRICS",
    "ROLES",
    "ROLE_LABELS",
    "ConceptAnalysis",
    "ConceptSettings",
    "RunEntropies",
    "analyze_concepts",
    "control_tests",
]

#: One-letter labels of the model roles (ROLES, from kdexplain.vocabulary, is the table order).
ROLE_LABELS: dict[str, str] = {"teacher": "T", "student": "S", "baseline": "B", "control": "C"}

#: Model-level metrics: name -> (per-image source, statistic over images).
METRICS: dict[str, tuple[str, str]] = {
    "N_fg": ("N_fg", "mean"),
    "N_bg": ("N_bg", "mean"),
    "fg_ratio": ("fg_ratio", "mean"),
    "D_mean": ("peak_distance", "mean"),
    "D_std": ("peak_distance", "std"),
    "D_var": ("peak_distance", "var"),
    "rho": ("rho", "mean"),
}


@dataclass(frozen=True)
class _Hypothesis:
    number: int
    claim: str
    metrics: tuple[tuple[str, str], ...]  # (metric, "greater" | "less")


#: The three hypotheses of Cheng et al. and the direction each metric should take (S vs B).
HYPOTHESES: tuple[_Hypothesis, ...] = (
    _Hypothesis(1, "S encodes more valid knowledge than B (more foreground concepts, fewer "
                   "background concepts, a larger foreground ratio)",
                (("N_fg", "greater"), ("N_bg", "less"), ("fg_ratio", "greater"))),
    _Hypothesis(2, "S learns its concepts more simultaneously and faster than B (smaller "
                   "mean and spread of the weight distance at the foreground-concept peak)",
                (("D_mean", "less"), ("D_std", "less"))),
    _Hypothesis(3, "S optimises more stably than B, with fewer detours (a larger share of "
                   "the foreground concepts ever learned is kept at the end)",
                (("rho", "greater"),)),
)


def _as_array(x: Any, name: str, dtype: Any = None) -> np.ndarray:
    try:
        return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array, got {type(x).__name__}: {err}") from None


@dataclass
class RunEntropies:
    """The entropy grids of one trained run (one seed), as the sweep delivers them.

    Attributes
    ----------
    entropy : dict role -> float array (M_r, N, g, g)
        Entropy ``H_i`` (nats per dimension) at each analysed checkpoint of model ``role``
        (``"teacher"``, ``"student"``, ``"baseline"``; any subset), sorted by epoch. A whole
        grid is NaN where that image had no usable signal at that checkpoint (``D0 == 0``).
    epochs : dict role -> int array (M_r,)
        Strictly increasing checkpoint epochs.
    distance : dict role -> float array (M_r,)
        Normalised weight distance ``d`` of the analysed layer at each checkpoint, the
        path length over optimiser steps (docs/method.md section 4); all NaN where it was not recorded (a run
        assembled from per-epoch state dicts: only ``distance_epoch`` exists).
    foreground : bool array (N, g, g)
        The images' masks on the grid.
    image_keys : list of str (N)
        Stable image identifiers (same order as the grids).
    distance_epoch : dict role -> float array (M_r,), optional
        The paper's per-epoch form of ``d``; used when ``ConceptSettings.distance == "epoch"``.
    seed : int, optional
        The run's training seed (position in the list when None).
    total_epochs : dict role -> int, optional
        Length of each model's training, for the selection rule's "late" epochs; defaults
        to the last checkpoint epoch.

    Torch tensors are accepted and converted to numpy.
    """

    entropy: dict[str, np.ndarray]
    epochs: dict[str, np.ndarray]
    distance: dict[str, np.ndarray]
    foreground: np.ndarray
    image_keys: list[str]
    distance_epoch: dict[str, np.ndarray] | None = None
    seed: int | None = None
    total_epochs: dict[str, int] | None = None

    def __post_init__(self) -> None:
        # own copies: validation converts the values and must not touch the caller's dicts
        self.entropy, self.epochs, self.distance = (dict(self.entropy), dict(self.epochs),
                                                    dict(self.distance))
        if self.distance_epoch is not None:
            self.distance_epoch = dict(self.distance_epoch)
        if self.total_epochs is not None:
            self.total_epochs = {r: int(v) for r, v in self.total_epochs.items()}
        self.foreground = _as_array(self.foreground, "foreground")
        if self.foreground.ndim != 3 or self.foreground.shape[1] != self.foreground.shape[2]:
            raise ValueError(f"foreground must be a bool array (images, g, g), got shape "
                             f"{self.foreground.shape}")
        if self.foreground.dtype != bool:
            if not np.isin(self.foreground, (0, 1)).all():
                raise ValueError("foreground must be boolean (or 0/1) per cell")
            self.foreground = self.foreground.astype(bool)
        n = self.foreground.shape[0]
        self.image_keys = [str(k) for k in self.image_keys]
        if len(self.image_keys) != n:
            raise ValueError(f"{len(self.image_keys)} image keys for {n} foreground masks")
        if len(set(self.image_keys)) != n:
            dup = sorted({k for k in self.image_keys if self.image_keys.count(k) > 1})
            raise ValueError(f"image keys repeat: {dup[:5]}")
        roles = set(self.entropy)
        unknown = roles - set(ALL_ROLES)
        if unknown:
            raise ValueError(f"unknown model roles {sorted(unknown)}; use {list(ALL_ROLES)}")
        if not roles:
            raise ValueError("RunEntropies needs the entropy of at least one model")
        for name, d in (("epochs", self.epochs), ("distance", self.distance)):
            if set(d) != roles:
                raise ValueError(f"{name} has roles {sorted(d)} but entropy has {sorted(roles)}")
        if self.distance_epoch is not None and set(self.distance_epoch) != roles:
            raise ValueError(f"distance_epoch has roles {sorted(self.distance_epoch)} but "
                             f"entropy has {sorted(roles)}")
        for role in list(self.entropy):
            ent = _as_array(self.entropy[role], f"entropy[{role!r}]", np.float64)
            if ent.ndim != 4 or ent.shape[1:] != self.foreground.shape:
                raise ValueError(f"entropy[{role!r}] has shape {ent.shape}; expected "
                                 f"(checkpoints, images, g, g) with (images, g, g) = "
                                 f"{self.foreground.shape} as the foreground")
            if ent.shape[0] == 0:
                raise ValueError(f"entropy[{role!r}] has no checkpoint")
            if np.isinf(ent).any():
                raise ValueError(f"entropy[{role!r}] holds infinite values (sigma 0?)")
            finite = np.isfinite(ent).reshape(*ent.shape[:2], -1)
            partial = finite.any(-1) & ~finite.all(-1)
            if partial.any():
                j, i = np.argwhere(partial)[0]
                raise ValueError(f"entropy[{role!r}] of image {self.image_keys[i]!r} at "
                                 f"checkpoint {j} is partly NaN; a grid is either all finite "
                                 "or all NaN (no usable signal)")
            self.entropy[role] = ent
            m = ent.shape[0]
            ep = _as_array(self.epochs[role], f"epochs[{role!r}]")
            if ep.shape != (m,) or not np.issubdtype(ep.dtype, np.number):
                raise ValueError(f"epochs[{role!r}] must hold {m} epochs, got shape {ep.shape}")
            if (np.diff(ep) <= 0).any():
                raise ValueError(f"epochs[{role!r}] must be strictly increasing, got "
                                 f"{ep.tolist()}; sort the checkpoints by epoch")
            self.epochs[role] = ep.astype(np.int64)
            for name, d in (("distance", self.distance), ("distance_epoch", self.distance_epoch)):
                if d is None:
                    continue
                dist = _as_array(d[role], f"{name}[{role!r}]", np.float64)
                unrecorded = name == "distance" and np.isnan(dist).all()
                if dist.shape != (m,) or not (np.isfinite(dist).all() or unrecorded):
                    raise ValueError(f"{name}[{role!r}] must be {m} finite values, got "
                                     f"shape {dist.shape}")
                d[role] = dist

    @property
    def roles(self) -> list[str]:
        """The models present, in table order."""
        return [r for r in ALL_ROLES if r in self.entropy]

    @property
    def n_images(self) -> int:
        return int(self.foreground.shape[0])

    @property
    def grid(self) -> int:
        return int(self.foreground.shape[1])


@dataclass(frozen=True)
class ConceptSettings:
    """How concepts are found and the hypotheses tested (names as in the experiment config).

    Attributes
    ----------
    concept_threshold : float
        ``b``: a cell is a concept when ``H_bar - H_i > b`` (0.2).
    baseline_entropy : {"pooled", "per_image"}
        ``H_bar`` pooled over the analysed images (original) or per image.
    select_effective : bool
        Apply the original selection rule (see :func:`~kdexplain.concepts.effective_images`).
    keep_effective : int, optional
        With ``select_effective``: of the images used by S and B, keep only the first
        ``keep_effective`` in draw order (the original's ``pick_sample``: 500 drawn, the
        first 50 effective kept); None keeps them all.
    late_fraction : float
        Checkpoints at ``epoch >= late_fraction * total_epochs`` are "late" for the selection
        rule (40/150, the original's 40 of 150 epochs).
    count_epoch : int, optional
        Checkpoint epoch of hypothesis 1's counts; None = each model's last checkpoint. It
        must be a checkpoint of S and B; a teacher without it uses its last checkpoint.
    distance : {"step", "epoch"}
        Weight distance for hypothesis 2: path length over optimiser steps (docs/method.md section 4), or the
        paper's per-epoch form (``RunEntropies.distance_epoch``).
    peak_without_concepts : {"first", "exclude"}
        ``m^`` of an image without any foreground concept: the first checkpoint (original)
        or left out of ``D_mean``/``D_std``.
    empty_rho : {"zero", "exclude"}
        ``rho`` of an image whose foreground never holds a concept (0/0): 0 (original) or
        left out.
    alpha : float
        Significance level of the verdicts.
    ci_level : float
        Coverage of the bootstrap intervals.
    n_resamples : int
        Bootstrap resamples.
    n_permutations : int
        Random swaps of the spread test (exhaustive when 2^n is not larger).
    stats_seed : int
        Seed of every resampling.
    """

    concept_threshold: float = DEFAULT_CONCEPT_THRESHOLD
    baseline_entropy: Literal["pooled", "per_image"] = "pooled"
    select_effective: bool = False
    keep_effective: int | None = None
    late_fraction: float = DEFAULT_LATE_FRACTION
    count_epoch: int | None = None
    distance: Literal["step", "epoch"] = "step"
    peak_without_concepts: Literal["first", "exclude"] = "first"
    empty_rho: Literal["zero", "exclude"] = "zero"
    alpha: float = 0.05
    ci_level: float = 0.95
    n_resamples: int = 2000
    n_permutations: int = 5000
    stats_seed: int = 0

    def __post_init__(self) -> None:
        choices = {"baseline_entropy": ("pooled", "per_image"), "distance": ("step", "epoch"),
                   "peak_without_concepts": ("first", "exclude"),
                   "empty_rho": ("zero", "exclude")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got "
                                 f"{getattr(self, name)!r}")
        if not 0 <= self.late_fraction <= 1:
            raise ValueError(f"late_fraction must be in [0, 1], got {self.late_fraction}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level}")
        if self.keep_effective is not None and (self.keep_effective < 1
                                                or not self.select_effective):
            raise ValueError("keep_effective needs select_effective: true and must be >= 1, "
                             f"got {self.keep_effective}")
        if self.n_resamples < 2 or self.n_permutations < 1:
            raise ValueError("n_resamples must be >= 2 and n_permutations >= 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ConceptSettings:
        """Build from a mapping of settings (e.g. from the config's ``analysis`` section,
        :meth:`AnalysisConfig.concept_settings <kdexplain.config.AnalysisConfig>`).

        Raises
        ------
        ValueError
            A key that is not a setting of this class (naming the settings that exist).
        """
        names = cls.__dataclass_fields__
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown concept setting(s) {', '.join(unknown)}; the settings "
                             f"are {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConceptAnalysis:
    """Everything the report needs: per-image numbers, summaries, tests and verdicts.

    Attributes
    ----------
    settings : ConceptSettings
    runs : list of RunEntropies
        The inputs (kept for figures).
    seeds : list of int
        One per run.
    models : dict seed -> dict role -> ModelConcepts
        Concepts of each model on its used images.
    used_keys : dict seed -> dict role -> list of str
        The images each model's numbers come from (the same list for S and B).
    images : DataFrame
        One row per (seed, role, image): ``seed``, ``role``, ``image_key``, ``usable``,
        ``effective``, ``used``, ``reason`` (why an image is not used).
    per_image : DataFrame
        One row per (seed, role, used image): ``N_fg``, ``N_bg``, ``fg_ratio`` (at the
        count checkpoint), ``count_epoch``, ``peak_epoch`` (m^), ``peak_distance`` (d(m^)),
        ``rho``.
    trajectories : DataFrame
        One row per (seed, role, checkpoint, used image): ``epoch``, ``distance``,
        ``H_bar``, ``N_fg``, ``N_bg``.
    summary : DataFrame
        One row per (role, metric): ``value`` (mean over seeds of the per-seed value),
        ``sd_images`` (ddof 1 over all units; per-image metrics only), ``sd_seeds`` (ddof 1
        over per-seed values; NaN with one seed), ``se`` (bootstrap), ``ci_low``,
        ``ci_high``, ``spread`` and ``spread_kind`` (what a table prints after "±"),
        ``n_images``, ``n_seeds``; for ``N_fg``, ``N_bg``, ``fg_ratio`` also ``epoch0``
        (the value at epoch 0, the untrained control where S and B share their weights)
        and ``change_from_epoch0`` with ``change_ci_low``/``change_ci_high``.
    tests : DataFrame
        One row per tested metric (see :data:`HYPOTHESES`) and level: with several seeds
        one ``level == "seeds"`` row (S paired with B by seed, ``n_pairs`` = seeds; it
        carries the verdict) and one ``level == "images"`` row per seed (a within-run
        diagnostic); with one seed only the image-level row, which then carries the verdict.
    verdicts : DataFrame
        One row per hypothesis: ``hypothesis``, ``claim``, ``verdict``, ``support``,
        ``level``, ``n_pairs``, ``scope`` (what the verdict covers), ``explanation``.
    notes : list of str
    teacher_run : RunEntropies, optional
        The shared teacher's grids, when the teacher was trained once for every seed.
    control_tests : DataFrame
        With the random-teacher control and several seeds (:func:`control_tests`): each
        hypothesis metric tested for C against B and for S against C, paired by seed.
    """

    settings: ConceptSettings
    runs: list[RunEntropies]
    seeds: list[int]
    models: dict[int, dict[str, ModelConcepts]]
    used_keys: dict[int, dict[str, list[str]]]
    images: pd.DataFrame
    per_image: pd.DataFrame
    trajectories: pd.DataFrame
    summary: pd.DataFrame
    tests: pd.DataFrame
    verdicts: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    teacher_run: RunEntropies | None = None
    control_tests: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def roles(self) -> list[str]:
        present = set().union(*(r.roles for r in self.runs))
        if self.teacher_run is not None:
            present.add("teacher")
        return [r for r in ALL_ROLES if r in present]

    def run_of(self, seed: int, role: str) -> RunEntropies | None:
        """The input holding ``role``'s grids for ``seed`` (the shared teacher's run for a
        shared teacher), or None."""
        if seed in self.seeds and role in self.runs[self.seeds.index(seed)].roles:
            return self.runs[self.seeds.index(seed)]
        t = self.teacher_run
        if role == "teacher" and t is not None and (t.seed if t.seed is not None else 0) == seed:
            return t
        return None


# --------------------------------------------------------------------------- selection

def _select(run: RunEntropies, seed: int, settings: ConceptSettings
            ) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Decide, per role, which images are used. Returns role -> bool (N,) and the table."""
    keys = np.asarray(run.image_keys, dtype=object)
    usable, effective, reasons = {}, {}, {}
    for role in run.roles:
        ent, epochs = run.entropy[role], run.epochs[role]
        ok, first_bad = usable_images(ent)
        why = np.array([""] * run.n_images, dtype=object)
        for i in np.flatnonzero(~ok):
            why[i] = f"no usable signal (D0 = 0) at epoch {int(epochs[first_bad[i]])}"
        eff = np.ones(run.n_images, dtype=bool)
        if settings.select_effective:
            total = (run.total_epochs or {}).get(role, int(epochs[-1]))
            late = settings.late_fraction * total
            eff, first = effective_images(ent, run.foreground, epochs, late)
            fg_mean, bg_mean = region_means(ent, run.foreground)
            for i in np.flatnonzero(~eff & ok):
                j = first[i]
                f, b = fg_mean[j, i], bg_mean[j, i]
                if np.isfinite(f) and np.isfinite(b):
                    detail = f"mean background entropy {b:.3f} < mean foreground {f:.3f}"
                else:
                    detail = ("no " + ("foreground" if not np.isfinite(f) else "background")
                              + " cell to compare")
                why[i] = f"not effective: {detail} at epoch {int(epochs[j])}"
        usable[role], effective[role], reasons[role] = ok, eff, why
    pair = [r for r in ("student", "baseline") if r in run.roles] or run.roles
    common = np.logical_and.reduce([usable[r] & effective[r] for r in pair])
    beyond = np.zeros_like(common)
    if settings.keep_effective is not None:
        beyond[np.flatnonzero(common)[settings.keep_effective:]] = True
        common = common & ~beyond
    used, rows = {}, []
    for role in run.roles:
        own = usable[role] & effective[role]
        used[role] = common & own
        why = reasons[role].copy()
        for i in np.flatnonzero(beyond):
            why[i] = (f"beyond the first {settings.keep_effective} effective images "
                      "(keep_effective)")
        for i in np.flatnonzero(own & ~common & ~beyond):
            others = [f"{ROLE_LABELS[r]}: {reasons[r][i]}" for r in pair
                      if r != role and reasons[r][i]]
            why[i] = "not used by the compared pair (" + "; ".join(others) + ")"
        rows.append(pd.DataFrame({
            "seed": seed, "role": role, "image_key": keys, "usable": usable[role],
            "effective": effective[role] if settings.select_effective else np.nan,
            "used": used[role], "reason": why,
        }))
    return used, pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- summary

def _per_seed_value(df: pd.DataFrame, source: str, statistic: str) -> pd.Series:
    def f(x: pd.Series) -> float:
        x = x.to_numpy(dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return float("nan")
        if statistic == "mean":
            return float(x.mean())
        return float(x.var()) if statistic == "var" else float(x.std())
    return df.groupby("seed", sort=True)[source].apply(f)


def _from_epoch0(sub: pd.DataFrame, metric: str, settings: ConceptSettings
                 ) -> tuple[float, Any]:
    """Hypothesis 1's metric at epoch 0 (mean over seeds of the per-seed mean) and the change
    from it to the count checkpoint, with a hierarchical bootstrap interval; NaN for the
    metrics without an epoch-0 value (D_*, rho)."""
    nan = float("nan")
    column = f"{metric}_epoch0"
    if column not in sub or not np.isfinite(sub[column].to_numpy(dtype=np.float64)).any():
        return nan, BootstrapCI(nan, nan, nan, nan, settings.ci_level, 0)
    per_seed = _per_seed_value(sub, column, "mean").dropna()
    change = paired_bootstrap_ci(sub[metric].to_numpy(dtype=np.float64),
                                 sub[column].to_numpy(dtype=np.float64),
                                 groups=sub["seed"].to_numpy(), n_resamples=settings.n_resamples,
                                 level=settings.ci_level, seed=settings.stats_seed)
    return float(per_seed.mean()), change


def _summarise(per_image: pd.DataFrame, roles: list[str], settings: ConceptSettings
               ) -> pd.DataFrame:
    rows = []
    for role in roles:
        sub = per_image[per_image["role"] == role]
        n_seeds = int(sub["seed"].nunique())
        for metric, (source, statistic) in METRICS.items():
            values = sub[source].to_numpy(dtype=np.float64)
            finite = np.isfinite(values)
            per_seed = _per_seed_value(sub, source, statistic).dropna()
            ci = bootstrap_ci(values, groups=sub["seed"].to_numpy(), statistic=statistic,
                              n_resamples=settings.n_resamples, level=settings.ci_level,
                              seed=settings.stats_seed)
            per_unit = statistic == "mean"
            sd_images = (float(np.std(values[finite], ddof=1))
                         if per_unit and finite.sum() > 1 else float("nan"))
            sd_seeds = float(per_seed.std(ddof=1)) if per_seed.size > 1 else float("nan")
            if per_seed.size > 1:
                spread, kind = sd_seeds, "sd over seeds"
            elif per_unit:
                spread, kind = sd_images, "sd over images"
            else:
                spread, kind = ci.se, "bootstrap se"
            epoch0, change = _from_epoch0(sub, metric, settings)
            # training moved the metric when its change from epoch 0 exceeds the spread of
            # the metric over seeds (undecided with one seed or without an epoch-0 value)
            moved = (bool(abs(change.estimate) > sd_seeds)
                     if np.isfinite(change.estimate) and np.isfinite(sd_seeds) else None)
            rows.append({
                "role": role, "label": ROLE_LABELS[role], "metric": metric,
                "epoch0": epoch0,
                "change_from_epoch0": change.estimate, "change_ci_low": change.low,
                "change_ci_high": change.high, "moved": moved,
                "value": float(per_seed.mean()) if per_seed.size else float("nan"),
                "spread": spread, "spread_kind": kind, "sd_images": sd_images,
                "sd_seeds": sd_seeds, "se": ci.se, "ci_low": ci.low, "ci_high": ci.high,
                "n_images": int(finite.sum()), "n_seeds": n_seeds,
            })
    return pd.DataFrame(rows)


def _seed_values(values: np.ndarray, groups: np.ndarray, statistic: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed statistic over each seed's values: (seeds (K,), values (K,)), seeds sorted."""
    fn = {"mean": np.mean, "std": np.std, "var": np.var}[statistic]
    seeds = np.unique(groups)
    return seeds, np.array([fn(values[groups == g]) for g in seeds], dtype=np.float64)


def _row(hyp: _Hypothesis, metric: str, direction: str, level: str, seed: int | None,
         s_val: float, b_val: float, diff: Any, res: Any, settings: ConceptSettings) -> dict:
    return {
        "hypothesis": hyp.number, "metric": metric,
        "direction": "S > B" if direction == "greater" else "S < B",
        "level": level, "seed": seed, "S": s_val, "B": b_val, "diff": diff.estimate,
        "diff_ci_low": diff.low, "diff_ci_high": diff.high, "median_diff": res.median_diff,
        "effect_size": res.effect_size, "effect_size_kind": res.effect_size_kind,
        "test": res.test, "statistic": res.statistic, "n_pairs": res.n,
        "min_p": min_seed_p_value(res.n_nonzero) if res.n_nonzero else float("nan"),
        "p_value": res.p_value, "_sign": res.sign, "_direction": direction,
        "verdict": metric_verdict(res.p_value, res.sign, direction, settings.alpha),
    }


def _seed_level(hyp: _Hypothesis, metric: str, direction: str, sv: np.ndarray,
                bv: np.ndarray, groups: np.ndarray, settings: ConceptSettings) -> dict:
    """S against B paired by seed: per-seed values, exact sign-flip test, hierarchical CI."""
    statistic = METRICS[metric][1]
    _, s_seed = _seed_values(sv, groups, statistic)
    _, b_seed = _seed_values(bv, groups, statistic)
    res = seed_paired_test(s_seed, b_seed, seed=settings.stats_seed)
    diff = paired_bootstrap_ci(sv, bv, groups=groups, statistic=statistic,
                               n_resamples=settings.n_resamples, level=settings.ci_level,
                               seed=settings.stats_seed)
    return _row(hyp, metric, direction, "seeds", None, float(s_seed.mean()),
                float(b_seed.mean()), diff, res, settings)


def control_tests(per_image: pd.DataFrame, settings: ConceptSettings) -> pd.DataFrame:
    """The random-teacher control C against B and S against C, paired by seed.

    The same exact sign-flip test and hierarchical interval as the verdicts' S-B rows, for
    every metric of every hypothesis. A difference S - B that C - B repeats does not come
    from the teacher's knowledge; S - C is the part that does. Holm's correction runs over
    each comparison's metrics of a hypothesis.

    Returns
    -------
    DataFrame
        One row per (comparison, hypothesis, metric): ``comparison`` ("C vs B", "S vs C"),
        ``first``, ``second`` (the per-seed means compared), ``diff`` with its interval,
        ``p_value``, ``p_holm``, ``n_pairs``, ``verdict`` (of the metric, in the hypothesis'
        direction with the control in the place of S or of B).
    """
    frames = {r: per_image[per_image["role"] == r].set_index(["seed", "image_key"])
              for r in ("student", "baseline", "control")}
    rows = []
    for name, first, second in (("C vs B", "control", "baseline"),
                                ("S vs C", "student", "control")):
        a, b = frames[first], frames[second]
        idx = a.index.intersection(b.index)
        groups = np.asarray(idx.get_level_values("seed"))
        if len(set(groups.tolist())) < 2:
            continue
        for hyp in HYPOTHESES:
            for metric, direction in hyp.metrics:
                source = METRICS[metric][0]
                av = a.loc[idx, source].to_numpy(dtype=np.float64)
                bv = b.loc[idx, source].to_numpy(dtype=np.float64)
                keep = np.isfinite(av) & np.isfinite(bv)
                row = _seed_level(hyp, metric, direction, av[keep], bv[keep], groups[keep],
                                  settings)
                row = {k: v for k, v in row.items() if not k.startswith("_")}
                row["first"], row["second"] = row.pop("S"), row.pop("B")
                row["direction"] = row["direction"].replace("S", ROLE_LABELS[first][0]) \
                    .replace("B", ROLE_LABELS[second])
                rows.append({"comparison": name, **row})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    p_holm = np.full(len(out), np.nan)
    for _, family in out.groupby(["comparison", "hypothesis"]):
        p_holm[family.index] = holm(family["p_value"].to_numpy(dtype=np.float64))
    out.insert(out.columns.get_loc("p_value") + 1, "p_holm", p_holm)
    return out.drop(columns=["seed", "level"])


def _image_level(hyp: _Hypothesis, metric: str, direction: str, sv: np.ndarray,
                 bv: np.ndarray, seed: int, settings: ConceptSettings) -> dict:
    """S against B over the images of one run (a within-run diagnostic with several seeds)."""
    statistic = METRICS[metric][1]
    if statistic == "mean":
        res = paired_test(sv, bv)
    else:
        res = spread_test(sv, bv, n_permutations=settings.n_permutations,
                          seed=settings.stats_seed)
    diff = paired_bootstrap_ci(sv, bv, statistic=statistic, n_resamples=settings.n_resamples,
                               level=settings.ci_level, seed=settings.stats_seed)
    fn = {"mean": np.mean, "std": np.std, "var": np.var}[statistic]
    s_val = float(fn(sv)) if sv.size else float("nan")
    b_val = float(fn(bv)) if bv.size else float("nan")
    return _row(hyp, metric, direction, "images", seed, s_val, b_val, diff, res, settings)


def _test(per_image: pd.DataFrame, settings: ConceptSettings
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The metric tests and the hypotheses' verdicts.

    With two or more seeds the verdicts come from the seed-level rows (``level`` "seeds",
    ``n_pairs`` = seeds); the image-level rows of each seed are within-run diagnostics. With
    one seed the image-level rows carry the verdicts, about those two networks only.
    """
    s = per_image[per_image["role"] == "student"].set_index(["seed", "image_key"])
    b = per_image[per_image["role"] == "baseline"].set_index(["seed", "image_key"])
    idx = s.index.intersection(b.index)
    s, b = s.loc[idx], b.loc[idx]
    groups = np.asarray(idx.get_level_values("seed"))
    seeds = sorted(set(groups.tolist()))
    rows = []
    for hyp in HYPOTHESES:
        for metric, direction in hyp.metrics:
            source = METRICS[metric][0]
            sv = s[source].to_numpy(dtype=np.float64)
            bv = b[source].to_numpy(dtype=np.float64)
            keep = np.isfinite(sv) & np.isfinite(bv)
            sv, bv, g = sv[keep], bv[keep], groups[keep]
            if len(seeds) > 1:
                rows.append(_seed_level(hyp, metric, direction, sv, bv, g, settings))
            for seed in seeds:
                mine = g == seed
                rows.append(_image_level(hyp, metric, direction, sv[mine], bv[mine], seed,
                                         settings))
    tests = pd.DataFrame(rows)
    if tests.empty:
        return tests, pd.DataFrame(columns=["hypothesis", "claim", "verdict", "support",
                                            "level", "n_pairs", "scope", "explanation"])
    tests["seed"] = tests["seed"].astype("Int64")
    carries = (tests["level"] == "seeds") if len(seeds) > 1 else tests["level"] == "images"
    tests.insert(tests.columns.get_loc("seed") + 1, "carries_verdict", carries)
    p_holm = np.full(len(tests), np.nan)
    for _, family in tests.groupby([tests["carries_verdict"], tests["seed"].fillna(-1)]):
        p_holm[family.index] = holm(family["p_value"].to_numpy(dtype=np.float64))
    tests.insert(tests.columns.get_loc("p_value") + 1, "p_holm", p_holm)
    verdicts = _verdicts(tests[tests["carries_verdict"]], seeds, settings)
    return tests.drop(columns=["_sign", "_direction"]), verdicts


def _verdicts(tests: pd.DataFrame, seeds: list[int], settings: ConceptSettings) -> pd.DataFrame:
    """One row per hypothesis from the rows that carry the verdicts."""
    n_seeds = len(seeds)
    if n_seeds > 1:
        scope = (f"{n_seeds} training runs (seeds), S paired with B by seed: the verdict is "
                 "about distillation against training from scratch in this setting")
    else:
        scope = (f"one training run (seed {seeds[0]}): the verdict covers those two networks "
                 "only (S and B of that run, compared over images), not distillation in "
                 "general; run several seeds for a claim about the method")
    out = []
    for hyp in HYPOTHESES:
        t = tests[tests["hypothesis"] == hyp.number]
        verdict = hypothesis_verdict(t["p_value"].tolist(), t["_sign"].tolist(),
                                     t["_direction"].tolist(), settings.alpha)
        n_hold = int((t["verdict"] == "holds").sum())
        parts = [f"{r.metric} {r.direction}: S {r.S:.4g} vs B {r.B:.4g}, p = {r.p_value:.3g} "
                 f"({r.verdict})" for r in t.itertuples()]
        explanation = "; ".join(parts)
        min_p = t["min_p"].min() if n_seeds > 1 else float("nan")
        if verdict == INCONCLUSIVE and np.isfinite(min_p) and min_p >= settings.alpha:
            explanation += (f". With {n_seeds} seeds the smallest p the exact test can give is "
                            f"{min_p:.3g} >= alpha = {settings.alpha:g}: inconclusive means too "
                            "few runs, not no effect; read the differences and their intervals")
        out.append({"hypothesis": hyp.number, "claim": hyp.claim, "verdict": verdict,
                    "support": f"{n_hold} of {len(t)} metrics hold",
                    "level": "seeds" if n_seeds > 1 else "images",
                    "n_pairs": int(t["n_pairs"].min()) if len(t) else 0, "scope": scope,
                    "explanation": explanation})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- entry point

def _extras(run: RunEntropies, role: str, mc: ModelConcepts) -> dict[str, np.ndarray]:
    """Per-image columns beyond the metrics: hypothesis 1's counts at epoch 0 (the untrained
    control, where S and B share their weights) and ``d(m^)`` and the total path ``d(M)``
    under both distance forms (per step and per epoch)."""
    n = mc.n_fg.shape[1]
    out: dict[str, np.ndarray] = {}
    at0 = np.flatnonzero(mc.epochs == 0)
    nan = np.full(n, np.nan)
    if at0.size:
        fg, bg = (mc.n_fg[at0[0]].astype(np.float64), mc.n_bg[at0[0]].astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(fg + bg > 0, fg / (fg + bg), 0.0)
        out.update({"N_fg_epoch0": fg, "N_bg_epoch0": bg, "fg_ratio_epoch0": ratio})
    else:
        out.update({"N_fg_epoch0": nan, "N_bg_epoch0": nan, "fg_ratio_epoch0": nan})
    excluded = ~np.isfinite(mc.peak_distance)
    for form, source in (("step", run.distance), ("epoch", run.distance_epoch)):
        if source is None:
            out[f"peak_distance_{form}"] = out[f"total_distance_{form}"] = nan
            continue
        d = np.asarray(source[role], dtype=np.float64)
        out[f"peak_distance_{form}"] = np.where(excluded, np.nan, d[mc.peak_index])
        out[f"total_distance_{form}"] = np.full(n, d[-1])
    return out


def _analyse_run(run: RunEntropies, seed: int, settings: ConceptSettings, notes: list[str]
                 ) -> tuple[dict, dict, pd.DataFrame, list[pd.DataFrame], list[pd.DataFrame]]:
    """Concepts of every model of one run: (models, used keys, image table, per-image
    frames, trajectory frames)."""
    used, table = _select(run, seed, settings)
    models: dict[str, ModelConcepts] = {}
    used_keys: dict[str, list[str]] = {}
    per_image, traj = [], []
    for role in run.roles:
        idx = np.flatnonzero(used[role])
        if idx.size == 0:
            reasons = table[(table["role"] == role) & ~table["used"]]["reason"]
            counts = reasons.str.replace(r" at epoch \d+", "", regex=True).value_counts()
            raise ValueError(
                f"seed {seed}: no image is left for the {role} (of {run.n_images}); "
                + "; ".join(f"{n} x {why}" for why, n in counts.items()))
        if settings.distance == "epoch" and run.distance_epoch is None:
            raise ValueError("distance='epoch' needs RunEntropies.distance_epoch "
                             "(the per-epoch weight distance); it was not given")
        if np.isnan(run.distance[role]).all():
            if settings.distance == "step":
                raise ValueError(f"the per-step weight distance of the {role} was not recorded "
                                 "(a run assembled from per-epoch state dicts): set "
                                 "analysis.distance=epoch (kdexplain report --set distance=epoch)")
            note = ("only the per-epoch form of the weight distance is available (a run "
                    "assembled from per-epoch state dicts): hypothesis 2 uses d_epoch and "
                    "the per-step columns are empty")
            if note not in notes:
                notes.append(note)
        dist = run.distance_epoch[role] if settings.distance == "epoch" else run.distance[role]
        count_epoch = settings.count_epoch
        if count_epoch is not None and count_epoch not in run.epochs[role]:
            if role != "teacher":
                raise ValueError(f"count_epoch {count_epoch} is not a checkpoint of the "
                                 f"{role} (epochs {run.epochs[role].tolist()})")
            count_epoch = None  # the teacher trains on its own schedule
            note = (f"count_epoch {settings.count_epoch} is not a teacher checkpoint; the "
                    "teacher's hypothesis-1 numbers are read at its last checkpoint")
            if note not in notes:
                notes.append(note)
        mc = model_concepts(
            run.entropy[role][:, idx], run.foreground[idx], run.epochs[role], dist,
            concept_threshold=settings.concept_threshold,
            baseline_entropy=settings.baseline_entropy, count_epoch=count_epoch,
            peak_without_concepts=settings.peak_without_concepts,
            empty_rho=settings.empty_rho)
        models[role] = mc
        keys = [run.image_keys[i] for i in idx]
        used_keys[role] = keys
        per_image.append(pd.DataFrame({
            "seed": seed, "role": role, "image_key": keys,
            "count_epoch": mc.count_epoch, **mc.image_metrics(),
            "peak_epoch": mc.epochs[mc.peak_index],
        })[["seed", "role", "image_key", "N_fg", "N_bg", "fg_ratio", "count_epoch",
            "peak_epoch", "peak_distance", "rho"]].assign(**_extras(run, role, mc)))
        m, n = mc.n_fg.shape
        traj.append(pd.DataFrame({
            "seed": seed, "role": role,
            "checkpoint": np.repeat(np.arange(m), n),
            "epoch": np.repeat(mc.epochs, n),
            "distance": np.repeat(mc.distance, n),
            "image_key": np.tile(np.asarray(keys, dtype=object), m),
            "H_bar": mc.h_bar.ravel(), "N_fg": mc.n_fg.ravel(), "N_bg": mc.n_bg.ravel(),
        }))
    return models, used_keys, table, per_image, traj


def analyze_concepts(runs: RunEntropies | Sequence[RunEntropies],
                     settings: ConceptSettings | None = None, *,
                     teacher: RunEntropies | None = None, **overrides: Any
                     ) -> ConceptAnalysis:
    """Concepts, the three hypotheses' metrics, their statistics and verdicts.

    Parameters
    ----------
    runs : RunEntropies or list of them
        One per trained run (seed). Pairs S-B are matched by (seed, image key).
    settings : ConceptSettings, optional
    teacher : RunEntropies, optional
        A teacher trained once and shared by every seed (only the ``teacher`` role, with the
        teacher's own seed): analysed once, on its own images. The runs must then hold no
        teacher of their own.
    **overrides
        Single settings, e.g. ``select_effective=True`` (applied over ``settings``).

    Returns
    -------
    ConceptAnalysis

    Raises
    ------
    ValueError
        For inconsistent inputs, or when no image is left for a model (the message gives
        the reasons images were left out).
    """
    if isinstance(runs, RunEntropies):
        runs = [runs]
    runs = list(runs)
    if not runs:
        raise ValueError("analyze_concepts needs at least one RunEntropies")
    base = settings.to_dict() if settings is not None else {}
    settings = ConceptSettings(**{**base, **overrides})
    seeds = [r.seed if r.seed is not None else i for i, r in enumerate(runs)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs share a seed: {seeds}; give each run its own seed")
    todo = list(zip(seeds, runs, strict=True))
    if teacher is not None:
        if teacher.roles != ["teacher"]:
            raise ValueError(f"the shared teacher's RunEntropies must hold only the teacher, "
                             f"got {teacher.roles}")
        own = [s for s, r in todo if "teacher" in r.roles]
        if own:
            raise ValueError(f"runs of seeds {own} have a teacher of their own besides the "
                             "shared teacher; give one or the other")
        todo.append((teacher.seed if teacher.seed is not None else 0, teacher))
    models: dict[int, dict[str, ModelConcepts]] = {}
    used_keys: dict[int, dict[str, list[str]]] = {}
    image_tables, per_image, traj = [], [], []
    notes: list[str] = []
    for seed, run in todo:
        m, u, table, pi, tr = _analyse_run(run, seed, settings, notes)
        models.setdefault(seed, {}).update(m)
        used_keys.setdefault(seed, {}).update(u)
        image_tables.append(table)
        per_image += pi
        traj += tr
    per_image_df = pd.concat(per_image, ignore_index=True)
    roles = [r for r in ALL_ROLES if r in set(per_image_df["role"])]
    summary = _summarise(per_image_df, roles, settings)
    if {"student", "baseline"} <= set(roles):
        tests, verdicts = _test(per_image_df, settings)
    else:
        tests, verdicts = pd.DataFrame(), pd.DataFrame()
        notes.append("the hypotheses compare the student with the baseline; one of them is "
                     "missing, so nothing was tested")
    if teacher is not None:
        notes.append(f"the teacher was trained once (seed {todo[-1][0]}) and shared by every "
                     "seed; its numbers come from that one network")
    controls = (control_tests(per_image_df, settings)
                if {"student", "baseline", "control"} <= set(roles) else pd.DataFrame())
    return ConceptAnalysis(
        settings=settings, runs=runs, seeds=seeds, models=models, used_keys=used_keys,
        images=pd.concat(image_tables, ignore_index=True), per_image=per_image_df,
        trajectories=pd.concat(traj, ignore_index=True), summary=summary, tests=tests,
        verdicts=verdicts, notes=notes, teacher_run=teacher, control_tests=controls)
