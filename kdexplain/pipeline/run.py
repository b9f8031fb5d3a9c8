"""The end-to-end pipeline: data -> triplet training -> quantification sweep -> report."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from kdexplain.config import ExperimentConfig, load_config
from kdexplain.pipeline.inputs import report_inputs, shared_teacher
from kdexplain.pipeline.preflight import check_before_training, check_report_folder
from kdexplain.pipeline.shared_roles import adopt_finished_roles
from kdexplain.pipeline.study_index import write_variants_index
from kdexplain.pipeline.sweeps import sweep
from kdexplain.train.fidelity import FIDELITY_COLUMNS, read_fidelity
from kdexplain.utils import check_writable_folder, folder_lock
from kdexplain.vocabulary import ALL_ROLES, COMPARED_ROLES

log = logging.getLogger("kdexplain.pipeline")


def make_report(run_dirs: Sequence[str | Path], out: str | Path, *, title: str | None = None,
                config: ExperimentConfig | None = None, command: str | None = None) -> Path:
    """Concept metrics, hypothesis tests and figures of finished sweeps -> ``out``.

    Parameters
    ----------
    run_dirs : sequence of run directories
        One per seed, each with a finished sweep.
    out : path
        Report folder (e.g. ``reports/quickstart``).
    """
    from kdexplain.concepts import threshold_curve
    from kdexplain.report import write_report

    if not run_dirs:
        raise ValueError("make_report needs at least one run directory")
    check_report_folder(out)
    # one writer per report folder, taken before the analysis is computed
    with folder_lock(out, "report", leave_no_file=True):
        inputs = report_inputs(run_dirs, config)
        run_dirs, config, shared = inputs.run_dirs, inputs.config, inputs.shared
        analysis = inputs.analyse()
        curve = threshold_curve(inputs.runs, inputs.settings) if set(COMPARED_ROLES) <= set(
            analysis.roles) else None
        out = Path(out)
        reproduce = [command] if command else [
            f"kdexplain report {' '.join(str(d) for d in run_dirs)} --out {out}"]
        acc_dirs = list(run_dirs) + ([shared] if shared is not None else [])
        write_report(analysis, out, images=inputs.sweeps[0].images,
                     config=config.model_dump(mode="json"),
                     title=title or f"kdexplain report: {config.name}", reproduce=reproduce,
                     accuracies=run_accuracies(acc_dirs), threshold_curve=curve)
    return out


def run_accuracies(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Final train and validation accuracy of every model the runs trained.

    Returns one row per (seed, role): ``seed``, ``role``, ``phase``, ``epoch`` (the last
    epoch with a validation accuracy, of the model's last phase), ``train_acc``,
    ``val_acc`` (NaN where the phase records none, e.g. a feature-distillation phase 1
    without a phase 2).
    """
    rows = []
    for d in map(Path, run_dirs):
        seed = load_config(d / "config.yaml").seed
        for role in ALL_ROLES:
            path = d / role / "metrics.csv"
            if not path.is_file():
                continue
            m = pd.read_csv(path)
            if m.empty:
                continue
            last = m[m["phase"] == m["phase"].iloc[-1]].iloc[-1]
            rows.append({"seed": seed, "role": role, "phase": last["phase"],
                         "epoch": int(last["epoch"]),
                         "train_acc": float(last["train_acc"]) if pd.notna(last["train_acc"])
                         else float("nan"),
                         "val_acc": float(last["val_acc"]) if pd.notna(last["val_acc"])
                         else float("nan"),
                         **{k: float("nan") for k in FIDELITY_COLUMNS},
                         **(read_fidelity(d / role) or {})})
    return pd.DataFrame(rows, columns=["seed", "role", "phase", "epoch", "train_acc", "val_acc",
                                       *FIDELITY_COLUMNS])


def run_experiment(config: str | Path, overrides: Sequence[str] = (), *,
                   report_dir: str | Path | None = None, run_base: str | Path | None = None,
                   device: str | None = None, show_progress: bool | None = None,
                   command: str | None = None) -> Path:
    """Build the data, train the triplet(s), sweep every checkpoint, write the report.

    Every stage resumes: finished trainings are not repeated (``--resume`` semantics),
    finished sweep units are skipped. Returns the report folder
    (default ``reports/<name>``). A config with ``variants`` runs each variant as an
    experiment of its own (report ``<report folder>/<variant>``) and writes an
    ``index.md`` over them with the wall time and the machine.
    """
    cfg = load_config(config, overrides)
    out = Path(report_dir) if report_dir is not None else Path("reports") / cfg.name
    if not cfg.variants:
        return _run_one(cfg, out, run_base, device, show_progress, command)
    t0 = time.perf_counter()
    done, earlier = [], []
    for variant in cfg.variants:
        t1 = time.perf_counter()
        sub = cfg.for_variant(variant)
        base = (Path(run_base) / variant if run_base is not None
                else Path(sub.out_dir) / sub.name)
        _run_one(sub, out / variant, base, device, show_progress, command, earlier)
        earlier.append((sub, base))
        done.append((variant, time.perf_counter() - t1))
    return write_variants_index(cfg, out, done, time.perf_counter() - t0, command)


def _run_one(cfg: ExperimentConfig, out: Path, run_base: str | Path | None,
             device: str | None, show_progress: bool | None, command: str | None,
             earlier: Sequence[tuple[ExperimentConfig, Path]] = ()) -> Path:
    from kdexplain.train import train_all_seeds

    check_writable_folder(out, "report folder")
    check_report_folder(out)
    base = Path(run_base) if run_base is not None else Path(cfg.out_dir) / cfg.name
    check_writable_folder(base.parent, "run folder's parent (out_dir)")
    # one pipeline per experiment folder at a time (under torchrun: rank 0 holds it)
    main = int(os.environ.get("RANK", "0")) == 0
    with folder_lock(base) if main else nullcontext():
        # everything that would refuse the run later is checked before a run folder's
        # config.yaml is rewritten or a model is trained
        check_before_training(cfg, base)
        if earlier and cfg.seeds:  # a study's variant: take what an earlier one trained alike
            adopt_finished_roles(cfg, base, list(earlier))
        t0 = time.perf_counter()
        dirs = [Path(d) for d in train_all_seeds(cfg, run_base, resume=True)]
        log.info("trained %d run(s) in %.0f s", len(dirs), time.perf_counter() - t0)
        t1 = time.perf_counter()
        teacher = shared_teacher(dirs)
        shared = [teacher] if teacher is not None and "teacher" in cfg.analysis.models else []
        for d in shared + dirs:
            sweep(d, device=device, show_progress=show_progress)
        log.info("swept in %.0f s", time.perf_counter() - t1)
        return make_report(dirs, out, config=cfg, command=command)
