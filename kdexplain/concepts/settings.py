"""How concepts are found and the hypotheses tested: :class:`ConceptSettings`.

The standard library only: the experiment config builds its analysis section from it
without loading NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any, Literal, get_args, get_origin, get_type_hints

__all__ = ["BOUND_KEYS", "DEFAULT_CONCEPT_THRESHOLD", "DEFAULT_LATE_FRACTION", "ConceptSettings"]

#: ``b`` of docs/method.md section 4: a cell is a concept when ``H_bar - H_i > b``.
DEFAULT_CONCEPT_THRESHOLD = 0.2
#: The original selection looked at checkpoints with epoch >= 40 of 150 epochs.
DEFAULT_LATE_FRACTION = 40 / 150

#: The keys of a setting's bounds in its field's metadata (pydantic's names: the experiment
#: config's analysis section is built from these fields, bounds included).
BOUND_KEYS: tuple[str, ...] = ("ge", "gt", "le", "lt")


def _bounds(**limits: float) -> dict[str, Any]:
    return {"metadata": limits}


def _describe(limits: Mapping[str, float]) -> str:
    """``{"gt": 0, "lt": 1}`` -> ``in (0, 1)``; ``{"ge": 2}`` -> ``>= 2``."""
    low = ("[", limits["ge"]) if "ge" in limits else ("(", limits["gt"]) if "gt" in limits else None
    high = ("]", limits["le"]) if "le" in limits else (")", limits["lt"]) if "lt" in limits else None
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]}"
    return f"{'<=' if high[0] == ']' else '<'} {high[1]}"


@cache
def _type_hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _within(value: float, limits: Mapping[str, float]) -> bool:
    return (value >= limits.get("ge", -float("inf")) and value > limits.get("gt", -float("inf"))
            and value <= limits.get("le", float("inf")) and value < limits.get("lt", float("inf")))


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
    keep_effective: int | None = field(default=None, **_bounds(ge=1))
    late_fraction: float = field(default=DEFAULT_LATE_FRACTION, **_bounds(ge=0, le=1))
    count_epoch: int | None = field(default=None, **_bounds(ge=0))
    distance: Literal["step", "epoch"] = "step"
    peak_without_concepts: Literal["first", "exclude"] = "first"
    empty_rho: Literal["zero", "exclude"] = "zero"
    alpha: float = field(default=0.05, **_bounds(gt=0, lt=1))
    ci_level: float = field(default=0.95, **_bounds(gt=0, lt=1))
    n_resamples: int = field(default=2000, **_bounds(ge=2))
    n_permutations: int = field(default=5000, **_bounds(ge=1))
    # NumPy's legacy generator takes seeds 0 .. 2**32 - 1
    stats_seed: int = field(default=0, **_bounds(ge=0, le=2**32 - 1))

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if get_origin(hints[f.name]) is Literal and value not in get_args(hints[f.name]):
                raise ValueError(f"{f.name} must be one of {list(get_args(hints[f.name]))}, "
                                 f"got {value!r}")
            if f.metadata and value is not None and not _within(value, f.metadata):
                raise ValueError(f"{f.name} must be {_describe(f.metadata)}, got {value}")
        if self.keep_effective is not None and not self.select_effective:
            raise ValueError("keep_effective needs select_effective: true and must be >= 1, "
                             f"got {self.keep_effective}")

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
