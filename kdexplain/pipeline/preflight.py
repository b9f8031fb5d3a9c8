"""Checks that run before anything is trained or written.

``kdexplain run`` trains for minutes to days before it sweeps and reports; a mistake that
the sweep or the report would find must be found first, before a run folder's
``config.yaml`` is rewritten (:func:`check_before_training`). A report folder must never
be a run folder, whose ``summary.json`` the report would overwrite
(:func:`check_report_folder`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from kdexplain.config import ExperimentConfig
from kdexplain.pipeline.sweeps import check_sweep_settings

log = logging.getLogger("kdexplain.pipeline")

__all__ = ["check_before_training", "check_report_folder", "is_run_folder"]

#: What a run folder holds besides its config.yaml (a report folder holds none of these).
_RUN_MARKERS = ("teacher", "student", "baseline", "sweep", "environment.json", "teacher.json")


def is_run_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a run folder written by ``kdexplain train-triplet`` / ``run``."""
    folder = Path(folder)
    return (folder / "config.yaml").is_file() and any(
        (folder / m).exists() for m in _RUN_MARKERS)


def check_report_folder(out: str | Path) -> None:
    """Refuse a report folder that is, or contains, a run folder.

    A report writes ``summary.json`` and ``index.md``; in a run folder it would replace
    the training's ``summary.json`` that the sweep reads.
    """
    out = Path(out)
    found = out if is_run_folder(out) else None
    if found is None and out.is_dir():
        found = next((c.parent for c in out.rglob("config.yaml") if is_run_folder(c.parent)),
                     None)
    if found is not None:
        where = "is" if found == out else f"contains ({found})"
        raise ValueError(f"the report folder {out} {where} a run folder; a report there would "
                         "overwrite the run's files (summary.json): choose another folder, "
                         "e.g. reports/<name>")


def _planned_runs(cfg: ExperimentConfig, base: Path) -> list[tuple[Path, ExperimentConfig]]:
    """The run folders ``kdexplain run`` trains and sweeps, each with its config."""
    from kdexplain.train.triplet import shared_teacher_dir

    if not cfg.seeds:
        return [(base, cfg)]
    runs = [(base / f"seed_{s}", cfg.for_seed(s)) for s in cfg.run_seeds()]
    if not cfg.teacher.per_seed:
        runs.append((shared_teacher_dir(cfg, base), cfg.for_seed(cfg.seed)))
    return runs


def _analysed_lengths(cfg: ExperimentConfig) -> dict[str, int]:
    """The length (epochs) of each analysed model's analysed phase."""
    lengths = {"teacher": cfg.teacher.epochs, "student": cfg.student.phase1_epochs,
               "baseline": cfg.baseline.epochs}
    return {r: lengths[r] for r in cfg.analysis.models}


def _check_checkpoints(cfg: ExperimentConfig) -> None:
    """Kept epochs beyond every phase (warned) and analysed epochs no model keeps (refused)."""
    phases = [cfg.teacher.pretrain_epochs, cfg.teacher.epochs, cfg.baseline.epochs,
              cfg.student.phase1_epochs, cfg.student.phase2_epochs]
    beyond = [e for e in cfg.checkpoints if e > max(phases)]
    if beyond:
        log.warning("warning: checkpoints %s lie beyond every training phase (the longest has "
                    "%d epochs): no model keeps them", beyond, max(phases))
    wanted = cfg.analysis.checkpoints
    if wanted == "all":
        return
    for role, length in _analysed_lengths(cfg).items():
        kept = {e for e in cfg.checkpoints if e <= length} | {length}
        missing = sorted(set(wanted) - kept)
        if missing:
            raise ValueError(f"analysis.checkpoints asks for epochs {missing}, which the {role} "
                             f"does not keep (it keeps {sorted(kept)}); add them to "
                             "`checkpoints` or remove them from analysis.checkpoints")


def _check_images(cfg: ExperimentConfig) -> None:
    """The analysis's grid fits the images and its split holds ``n_images`` images."""
    from kdexplain.data import build_dataset

    a, d = cfg.analysis, cfg.data
    if a.grid > d.image_size:
        raise ValueError(f"analysis.grid = {a.grid} is larger than the images "
                         f"(data.image_size = {d.image_size}); use a grid of at most "
                         f"{d.image_size} cells")
    n = len(build_dataset(d.name, split=a.split, root=d.root, image_size=d.image_size,
                          **d.options))
    if a.n_images > n:
        raise ValueError(f"analysis.n_images = {a.n_images}, but the {a.split!r} split of "
                         f"{d.name} holds only {n} images; analyse at most {n}")


def check_before_training(cfg: ExperimentConfig, base: str | Path) -> None:
    """Everything that would refuse ``kdexplain run`` after training, checked before it.

    Parameters
    ----------
    cfg : ExperimentConfig
        The experiment (one variant).
    base : path
        Its run folder (``out_dir/name``; with ``seeds`` the folder of the seeds' runs).
    """
    for run_dir, run_cfg in _planned_runs(cfg, Path(base)):
        check_sweep_settings(run_dir, run_cfg)
    _check_checkpoints(cfg)
    _check_images(cfg)
