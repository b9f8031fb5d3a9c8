"""The result of a concept analysis: :class:`ConceptAnalysis`."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from kdexplain.concepts.metrics import ModelConcepts
from kdexplain.concepts.runs import RunEntropies
from kdexplain.concepts.settings import ConceptSettings
from kdexplain.vocabulary import ALL_ROLES

__all__ = ["ConceptAnalysis"]


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
