"""How concepts are found and the hypotheses tested: :class:`ConceptSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kdexplain.concepts.metrics import DEFAULT_CONCEPT_THRESHOLD, DEFAULT_LATE_FRACTION

__all__ = ["ConceptSettings"]


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
