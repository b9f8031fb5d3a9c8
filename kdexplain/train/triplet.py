"""The triplet of Cheng et al. (docs/method.md section 2): teacher, distilled student, baseline.

:func:`train_triplet` trains the three networks of one experiment into a run directory::

    RUN_DIR/
      config.yaml            the resolved config
      environment.json       package versions, git revision, machine
      teacher/ student/ baseline/
        checkpoints/epoch_XXXX.pt    kept epochs of the analysed phase
        checkpoints/<phase>/...      other phases (teacher: pretrain, student: phase2)
        last.pt                      newest state (resume point)
        metrics.csv                  per epoch and phase
        trajectory.csv               per optimiser step of the analysed phase
        weight_distance.csv          per kept checkpoint
      summary.json           final accuracies, throughput, timings, paths

- Teacher: pretrained weights (``teacher.pretrained``), or pre-training on ``data.source``
  for ``teacher.pretrain_epochs``; the head is then re-initialised and the whole network
  fine-tuned on the target for ``teacher.epochs`` (phase ``finetune``, analysed; epoch 0 =
  the start of fine-tuning).
- Baseline: from scratch with labels (phase ``train``).
- Student: from scratch (by default from the baseline's initial weights). ``feature`` mode:
  phase 1 minimises the MSE between its and the teacher's output of layer L (analysed);
  phase 2 freezes the parameters that output depends on and trains the rest with
  cross-entropy (skipped when L is the last layer). ``soft``/``logit_l2``: one phase with
  Hinton's loss or L2 on zero-meaned logits.
- Control (``student.control``): a second student distilled by the same procedure from an
  untrained teacher (the teacher's architecture at its initial weights), in ``control/``.
- Each model's fidelity to the teacher on the validation set (top-1 agreement, KL, ECE) goes
  to ``<role>/fidelity.json``.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdexplain.config import (
    ExperimentConfig,
)
from kdexplain.models import build_model, load_model, load_state_dict
from kdexplain.train.distributed import DistContext
from kdexplain.train.loop import ModelTrainer
from kdexplain.train.phase import Phase
from kdexplain.train.run_folder import (
    finish_run,
    model_summary,
    start_run,
    summary_head,
    write_run_info,
)
from kdexplain.train.setup import (
    RunSetup,
    build_run_dataset,
    check_pretrained,
    count_classes,
    kept_epochs,
    setup_run,
    transfer_body,
)
from kdexplain.utils import (
    derive_seed,
    deterministic,
    flush_denormals,
    folder_lock,
    read_json,
    write_json,
)
from kdexplain.weights import resolve_weights

__all__ = ["SHARED_TEACHER", "run_dir_for", "shared_teacher_dir",
           "shared_teacher_of", "train_all_seeds", "train_teacher", "train_triplet"]

log = logging.getLogger("kdexplain.train")

#: Folder of the teacher shared by every seed, inside ``out_dir/name``.
SHARED_TEACHER = "shared_teacher"
#: File in a seed's run directory that points to the shared teacher's run.
TEACHER_LINK = "teacher.json"

def run_dir_for(config: ExperimentConfig, seed: int | None = None) -> Path:
    """Where a run of ``config`` goes: ``out_dir/name``, or ``out_dir/name/seed_<s>`` for one
    seed of a multi-seed config (``seeds`` set)."""
    base = Path(config.out_dir) / config.name
    if config.seeds:
        return base / f"seed_{config.seed if seed is None else seed}"
    return base


def shared_teacher_dir(config: ExperimentConfig, run_dir: str | Path | None = None) -> Path:
    """Where the teacher shared by every seed of a multi-seed config is trained:
    ``<run_dir or out_dir/name>/shared_teacher``."""
    base = Path(run_dir) if run_dir is not None else Path(config.out_dir) / config.name
    return base / SHARED_TEACHER


def shared_teacher_of(run_dir: str | Path) -> Path | None:
    """The shared teacher's run directory that a seed's run uses, or None (own teacher)."""
    path = Path(run_dir) / TEACHER_LINK
    if not path.is_file():
        return None
    return (Path(run_dir) / read_json(path)["run"]).resolve()


def train_triplet(config: ExperimentConfig, run_dir: str | Path | None = None,
                  resume: bool = False, teacher_run: str | Path | None = None) -> Path:
    """Train teacher, baseline and student of one experiment (one seed: ``config.seed``).

    Parameters
    ----------
    config : ExperimentConfig
    run_dir : str or Path, optional
        Default :func:`run_dir_for` ``(config)``.
    resume : bool
        Continue from each model's ``last.pt`` (models already finished are loaded, not
        retrained). The config must equal the interrupted run's, except for
        ``name``, ``out_dir``, ``device``, ``seeds``, ``analysis``, ``optim.num_workers``.
        Without ``resume`` the run directory must not hold a run already.
    teacher_run : str or Path, optional
        A finished teacher-only run (:func:`train_teacher`): the student distils from that
        teacher, this run trains no teacher of its own and records the link in
        ``teacher.json``.

    Returns
    -------
    Path
        The run directory. Under ``torchrun`` every process returns it; only rank 0 writes.
    """
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(config)
    ctx = DistContext.setup(config.device)
    try:
        # one process at a time in a run folder (under torchrun: rank 0 holds it)
        with (folder_lock(run_dir) if ctx.is_main else nullcontext(),
              deterministic(config.deterministic), flush_denormals()):
            return _train(config, run_dir, resume, ctx, None if teacher_run is None
                          else Path(teacher_run))
    finally:
        ctx.close()


def train_teacher(config: ExperimentConfig, run_dir: str | Path, resume: bool = False) -> Path:
    """Train only the teacher of ``config`` (seed ``config.seed``) into a run directory of
    its own, to be shared by the seeds of a multi-seed experiment (docs/method.md section 2: the teacher is a
    given network; the randomness under study is that of S and B).

    The directory has the layout of :func:`train_triplet` with only ``teacher/``; its
    ``summary.json`` says ``"teacher_only": true``. A finished teacher is not retrained.
    """
    run_dir = Path(run_dir)
    ctx = DistContext.setup(config.device)
    try:
        t_start = time.perf_counter()
        with (folder_lock(run_dir) if ctx.is_main else nullcontext(),
              deterministic(config.deterministic), flush_denormals()):
            return _train_teacher_only(config, run_dir, resume, ctx, t_start)
    finally:
        ctx.close()


def _train_teacher_only(config: ExperimentConfig, run_dir: Path, resume: bool,
                        ctx: DistContext, t_start: float) -> Path:
    started = start_run(config, run_dir, resume, ctx, free=("student", "baseline"))
    setup = setup_run(config, ctx)
    check_pretrained(config, setup.num_classes)
    write_run_info(config, run_dir, started, ctx)
    summary = summary_head(config, run_dir, ctx, setup)
    summary["teacher_only"] = True
    teacher, summary["models"]["teacher"] = _train_teacher(config, run_dir, setup, resume)
    _write_fidelity(run_dir, ["teacher"], teacher, setup.val_set, ctx)
    finish_run(summary, run_dir, ctx, t_start)
    return run_dir


def _train(config: ExperimentConfig, run_dir: Path, resume: bool, ctx: DistContext,
           teacher_run: Path | None = None) -> Path:
    t_start = time.perf_counter()
    if teacher_run is not None and not (teacher_run / "teacher" / "last.pt").is_file():
        raise FileNotFoundError(f"the shared teacher {teacher_run} is not trained (no "
                                "teacher/last.pt); train it first with train_teacher")
    started = start_run(config, run_dir, resume, ctx)
    setup = setup_run(config, ctx)
    if teacher_run is None:
        check_pretrained(config, setup.num_classes)
    write_run_info(config, run_dir, started, ctx)
    summary = summary_head(config, run_dir, ctx, setup)
    if teacher_run is None:
        teacher, summary["models"]["teacher"] = _train_teacher(config, run_dir, setup, resume)
    else:
        teacher = load_model(teacher_run / "teacher" / "last.pt").to(ctx.device)
        link = {"run": os.path.relpath(teacher_run, run_dir),
                "seed": read_json(teacher_run / "summary.json").get("seed")
                if (teacher_run / "summary.json").is_file() else None}
        summary["teacher_run"] = link["run"]
        if ctx.is_main:
            write_json(run_dir / TEACHER_LINK, link)
    summary["models"].update(_train_pair(config, run_dir, setup, teacher, resume))
    _write_fidelity(run_dir, list(summary["models"]), teacher, setup.val_set, ctx)
    finish_run(summary, run_dir, ctx, t_start)
    return run_dir


def _train_teacher(config: ExperimentConfig, run_dir: Path, s: RunSetup, resume: bool
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """Pre-train (or load) and fine-tune the teacher; returns it and its summary."""
    d, m, t = config.data, config.model, config.teacher
    t_optim = config.optim.merged(t.optim)
    init, num_classes = s.init, s.num_classes
    phases: list[Phase] = []
    if t.pretrained is None and t.pretrain_epochs > 0:
        src = d.source
        size = src.image_size or d.image_size
        src_train = build_run_dataset(src.name, src.split, src.root, size, src.options, src.preload)
        src_val = (build_run_dataset(src.name, src.val_split, src.root, size, src.options,
                                  src.preload)
                   if src.val_split else None)
        src_classes = count_classes(src_train, f"source dataset {src.name!r} ({src.split})")

        def new_head(model: nn.Module) -> nn.Module:
            fresh = init("teacher-head")
            return transfer_body(fresh, {k: v.cpu() for k, v in model.state_dict().items()},
                             "the pre-trained teacher")

        phases.append(Phase("pretrain", t.pretrain_epochs, "ce", src_train, src_val, src_classes,
                            t_optim.merged(t.pretrain_optim), keep={t.pretrain_epochs},
                            subdir="pretrain"))
        phases.append(Phase("finetune", t.epochs, "ce", s.train_set, s.val_set, num_classes,
                            t_optim, keep=kept_epochs(config, t.epochs), tracked=True,
                            prepare=new_head))
        teacher_init = lambda: init("teacher", src_classes)  # noqa: E731
    else:
        if t.pretrained is None:
            log.warning("teacher: no pretrained weights and no pre-training: the teacher is "
                        "trained from scratch on the target, like the baseline")
        phases.append(Phase("finetune", t.epochs, "ce", s.train_set, s.val_set, num_classes,
                            t_optim, keep=kept_epochs(config, t.epochs), tracked=True))

        def teacher_init() -> nn.Module:
            if t.pretrained is None:
                return init("teacher")
            if t.pretrained == "torchvision":
                torch.manual_seed(derive_seed(config.seed, "init", "teacher-head"))
                try:
                    return build_model(m.arch, num_classes, pretrained="torchvision", **m.kwargs)
                except RuntimeError as e:
                    raise ValueError(str(e)) from e
            path = resolve_weights(t.pretrained)
            if not path.is_file():
                raise FileNotFoundError(f"teacher.pretrained: weights file {path} does not exist")
            return transfer_body(init("teacher-head"), load_state_dict(path), str(path))

    trainer = ModelTrainer("teacher", run_dir / "teacher", phases, **s.common)
    teacher = trainer.run(teacher_init, resume=resume)
    return teacher, model_summary(trainer)


def _train_pair(config: ExperimentConfig, run_dir: Path, s: RunSetup, teacher: nn.Module,
                resume: bool) -> dict[str, Any]:
    """Train the baseline and the student of one seed; returns their summaries."""
    out: dict[str, Any] = {}
    init, num_classes, train_set, val_set = s.init, s.num_classes, s.train_set, s.val_set
    b = config.baseline
    base_key = "scratch" if config.student.same_init_as_baseline else "baseline"
    baseline_trainer = ModelTrainer(
        "baseline", run_dir / "baseline",
        [Phase("train", b.epochs, "ce", train_set, val_set, num_classes,
               config.optim.merged(b.optim), keep=kept_epochs(config, b.epochs), tracked=True)],
        **s.common)
    baseline_trainer.run(lambda: init(base_key), resume=resume)
    out["baseline"] = model_summary(baseline_trainer)

    st = config.student
    s_optim = config.optim.merged(st.optim)
    student_key = "scratch" if st.same_init_as_baseline else "student"
    if st.mode == "feature":
        phases = [Phase("phase1", st.phase1_epochs, "feature", train_set, val_set, num_classes,
                        s_optim, keep=kept_epochs(config, st.phase1_epochs), tracked=True,
                        freeze="above")]
        if st.phase2_epochs > 0 and s.has_above:
            phases.append(Phase("phase2", st.phase2_epochs, "ce", train_set, val_set,
                                num_classes, s_optim, keep=kept_epochs(config, st.phase2_epochs),
                                subdir="phase2", freeze="upstream"))
        elif not s.has_above:
            log.info("student: layer %s is the last layer, so there is no phase 2", s.layer)
    else:
        phases = [Phase("phase1", st.phase1_epochs, st.mode, train_set, val_set, num_classes,
                        s_optim, keep=kept_epochs(config, st.phase1_epochs), tracked=True)]
    distillers = [("student", teacher)]
    if st.control:
        # the random-teacher control: the same procedure from the teacher's architecture at
        # its initial weights (drawn per seed), so whatever S shares with it is not knowledge
        with torch.random.fork_rng():
            untrained = init("control-teacher").to(s.common["ctx"].device)
        distillers.append(("control", untrained))
    for role, source in distillers:
        trainer = ModelTrainer(role, run_dir / role, phases, teacher=source,
                               temperature=st.temperature, soft_weight=st.soft_weight,
                               **s.common)
        trainer.run(lambda: init(student_key), resume=resume)
        out[role] = model_summary(trainer)
    return out


def _write_fidelity(run_dir: Path, roles: list[str], teacher: nn.Module, val_set: Any,
                    ctx: DistContext, teacher_dir: Path | None = None) -> None:
    """Each model's fidelity to the teacher on the validation set (agreement, KL, ECE;
    :mod:`kdexplain.train.fidelity`) into ``<role>/fidelity.json``; the teacher's own (ECE,
    agreement 1, KL 0) goes to ``teacher_dir`` (default ``run_dir/teacher``)."""
    from kdexplain.train.fidelity import ECE_BINS, fidelity, predict_logits

    if not ctx.is_main or val_set is None or len(val_set) == 0:
        return
    t_logits, labels = predict_logits(teacher, val_set, ctx.device)
    for role in roles:
        folder = (teacher_dir or run_dir / "teacher") if role == "teacher" else run_dir / role
        if role == "teacher":
            logits = t_logits
        else:
            logits, _ = predict_logits(load_model(folder / "last.pt").to(ctx.device), val_set,
                                       ctx.device)
        write_json(folder / "fidelity.json",
                   {**fidelity(t_logits, logits, labels), "n_images": len(labels),
                    "ece_bins": ECE_BINS, "split": "val"})


def train_all_seeds(config: ExperimentConfig, run_dir: str | Path | None = None,
                    resume: bool = False) -> list[Path]:
    """Train the triplet once per seed of ``config.run_seeds()``.

    With ``seeds`` set, seed ``s`` goes to ``<run_dir>/seed_<s>`` (``run_dir`` default
    ``out_dir/name``); otherwise this is :func:`train_triplet`. With ``seeds`` and
    ``teacher.per_seed: false`` (the default) the teacher is trained once, with ``seed``,
    into ``<run_dir>/shared_teacher`` (:func:`train_teacher`), and every seed's student
    distils from it; ``teacher.per_seed: true`` trains a teacher per seed.
    """
    if not config.seeds:
        return [train_triplet(config, run_dir, resume)]
    base = Path(run_dir) if run_dir is not None else Path(config.out_dir) / config.name
    teacher_run = None
    if not config.teacher.per_seed:
        teacher_run = train_teacher(config.for_seed(config.seed), shared_teacher_dir(config, base),
                                    resume)
    out = []
    for s in config.run_seeds():
        out.append(train_triplet(config.for_seed(s), base / f"seed_{s}", resume, teacher_run))
    return out


