"""What a report is computed from: a finished experiment's sweeps, read back.

:func:`report_inputs` is shared by the report (:func:`kdexplain.pipeline.run.make_report`)
and the calibration (:mod:`kdexplain.pipeline.calibrate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kdexplain.config import ExperimentConfig, load_config
from kdexplain.pipeline.sweeps import SweepData, load_sweep

if TYPE_CHECKING:
    from kdexplain.concepts import ConceptAnalysis, ConceptSettings, RunEntropies

__all__ = ["ReportInputs", "report_inputs", "shared_teacher"]


@dataclass
class ReportInputs:
    """What a report of finished sweeps is computed from (:func:`report_inputs`).

    Attributes
    ----------
    run_dirs : list of Path
        One per seed.
    sweeps : list of SweepData
        Each run's sweep, in the order of ``run_dirs``.
    runs : list of RunEntropies
        The same as the analysis's input, each with its run's seed.
    shared : Path, optional
        The shared teacher's run, when the seeds share one.
    teacher : RunEntropies, optional
        Its grids, when the teacher is analysed.
    config : ExperimentConfig
        The first run's config (the experiment's).
    settings : ConceptSettings
        The concept settings of the config's ``analysis`` section.
    """

    run_dirs: list[Path]
    sweeps: list[SweepData]
    runs: list[RunEntropies]
    shared: Path | None
    teacher: RunEntropies | None
    config: ExperimentConfig
    settings: ConceptSettings

    def analyse(self) -> ConceptAnalysis:
        """The report's :class:`~kdexplain.concepts.ConceptAnalysis` of these sweeps."""
        from kdexplain.concepts import analyze_concepts

        return analyze_concepts(self.runs, self.settings, teacher=self.teacher)


def report_inputs(run_dirs: Sequence[str | Path], config: ExperimentConfig | None = None
                  ) -> ReportInputs:
    """Load the finished sweeps of an experiment's runs (and of its shared teacher)."""
    from kdexplain.concepts import ConceptSettings

    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("a report needs at least one run directory")
    if config is None:
        config = load_config(run_dirs[0] / "config.yaml")
    a = config.analysis
    runs, sweeps = [], []
    for d in run_dirs:
        data = load_sweep(d)
        sweeps.append(data)
        runs.append(data.to_run_entropies(seed=load_config(d / "config.yaml").seed))
    teacher = None
    shared = shared_teacher(run_dirs)
    if shared and "teacher" in a.models:
        teacher = load_sweep(shared).to_run_entropies(
            seed=load_config(shared / "config.yaml").seed)
    settings = ConceptSettings.from_mapping(a.concept_settings())
    return ReportInputs(run_dirs=run_dirs, sweeps=sweeps, runs=runs, shared=shared,
                        teacher=teacher, config=config, settings=settings)


def shared_teacher(run_dirs: Sequence[Path]) -> Path | None:
    """The one shared teacher's run the seeds use (None: each has its own teacher)."""
    from kdexplain.train.triplet import shared_teacher_of

    links = [shared_teacher_of(d) for d in run_dirs]
    found = {p for p in links if p is not None}
    if not found:
        return None
    if len(found) > 1 or None in links:
        raise ValueError(f"the runs do not share one teacher ({sorted(map(str, found))} and "
                         f"{links.count(None)} run(s) with their own); report them apart")
    return found.pop()
