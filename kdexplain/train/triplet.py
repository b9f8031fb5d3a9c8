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
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdexplain.config import (
    ConfigError,
    ExperimentConfig,
    dump_config,
    flatten_config,
    key_under,
    parse_config,
    read_yaml,
)
from kdexplain.data.preloaded import PreloadedDataset
from kdexplain.models import build_model, load_model, load_state_dict, resolve_layer_name
from kdexplain.train.distributed import DistContext
from kdexplain.train.features import upstream_parameters
from kdexplain.train.loop import ModelTrainer
from kdexplain.train.phase import Phase
from kdexplain.utils import (
    atomic_write_text,
    derive_seed,
    deterministic,
    environment_info,
    folder_lock,
    read_json,
    remove_stale_temporaries,
    seed_everything,
    write_json,
)
from kdexplain.vocabulary import ALL_ROLES, ROLES
from kdexplain.weights import resolve_weights

__all__ = ["ROLES", "SHARED_TEACHER", "format_summary", "run_dir_for", "shared_teacher_dir",
           "shared_teacher_of", "train_all_seeds", "train_teacher", "train_triplet"]

log = logging.getLogger("kdexplain.train")

#: Folder of the teacher shared by every seed, inside ``out_dir/name``.
SHARED_TEACHER = "shared_teacher"
#: File in a seed's run directory that points to the shared teacher's run.
TEACHER_LINK = "teacher.json"

#: Config keys that may change between an interrupted run and its resumption.
_RESUME_FREE = ("name", "out_dir", "device", "seeds", "analysis", "optim.num_workers",
                "optim.eval_batch_size")


def run_dir_for(config: ExperimentConfig, seed: int | None = None) -> Path:
    """Where a run of ``config`` goes: ``out_dir/name``, or ``out_dir/name/seed_<s>`` for one
    seed of a multi-seed config (``seeds`` set)."""
    base = Path(config.out_dir) / config.name
    if config.seeds:
        return base / f"seed_{config.seed if seed is None else seed}"
    return base


def _config_changes(old: dict, new: dict, free: tuple[str, ...] = ()) -> list[str]:
    a, b = flatten_config(old), flatten_config(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not key_under(k, _RESUME_FREE + free)]


def _build_dataset(name: str, split: str, root: str | None, image_size: int,
                   options: dict[str, Any], preload: bool = False):
    from kdexplain.data import build_dataset  # the data room (lower): imported when needed

    ds = build_dataset(name, split=split, root=root, image_size=image_size, **options)
    if preload and len(ds) > 0:
        ds = PreloadedDataset(ds, desc=f"reading {name} {split}")
    return ds


def _num_classes(ds, what: str) -> int:
    n = int(getattr(ds, "num_classes", 0))
    if n < 2:
        raise ValueError(f"{what} has {n} class(es); classification needs at least 2. Check the "
                         "dataset's root and options (e.g. the class list)")
    if len(ds) == 0:
        raise ValueError(f"{what} holds no images; check the dataset's root and options")
    return n


def _head_name(model: nn.Module) -> str:
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear head to re-initialise")
    return linears[-1]


def _transfer(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """Load ``state`` into ``model`` except its head (which keeps its fresh initialisation)."""
    head = _head_name(model)
    own = model.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in body.items()
           if k in own and own[k].shape != v.shape]
    missing = [k for k in own if not k.startswith(head + ".") and k not in body]
    unexpected = [k for k in body if k not in own]
    if bad or missing or unexpected:
        raise ValueError(f"{what} does not fit the architecture: shape mismatches {bad[:5]}, "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(body, strict=False)
    return model


def _keep(config: ExperimentConfig, epochs: int) -> set[int]:
    return {e for e in config.checkpoints if e <= epochs}


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
              deterministic(config.deterministic)):
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
              deterministic(config.deterministic)):
            return _train_teacher_only(config, run_dir, resume, ctx, t_start)
    finally:
        ctx.close()


def _train_teacher_only(config: ExperimentConfig, run_dir: Path, resume: bool,
                        ctx: DistContext, t_start: float) -> Path:
    started = _start(config, run_dir, resume, ctx, free=("student", "baseline"))
    setup = _setup(config, ctx)
    _check_pretrained(config, setup.num_classes)
    _write_run_info(config, run_dir, started, ctx)
    summary = _summary_head(config, run_dir, ctx, setup)
    summary["teacher_only"] = True
    teacher, summary["models"]["teacher"] = _train_teacher(config, run_dir, setup, resume)
    _write_fidelity(run_dir, ["teacher"], teacher, setup.val_set, ctx)
    _finish(summary, run_dir, ctx, t_start)
    return run_dir


@dataclass
class _Setup:
    """What every model of a run needs: the data, the analysed layer, the initialiser."""

    train_set: Any
    val_set: Any
    num_classes: int
    layer: str
    has_above: bool
    common: dict[str, Any]
    init: Callable[..., nn.Module]


def _start(config: ExperimentConfig, run_dir: Path, resume: bool, ctx: DistContext,
           free: tuple[str, ...] = ()) -> bool:
    """Check whether ``run_dir`` may be (re)used, then seed; returns whether it holds
    finished work (a model's ``last.pt``) to continue.

    A folder with finished work needs ``resume`` and the same config; a folder without (only
    the ``config.yaml`` of a command that failed before its first epoch) is simply reused.
    Nothing is written here: :func:`_write_run_info` does that once everything is validated.
    """
    cfg_path = run_dir / "config.yaml"
    started = any((run_dir / r / "last.pt").is_file() for r in ALL_ROLES)
    if started and not resume:
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or "
                         "choose another name (name=... or --run-dir)")
    if started and cfg_path.is_file():
        # through the current schema, so keys added since then compare as their defaults
        old = parse_config(read_yaml(cfg_path.read_text(encoding="utf-8"), str(cfg_path)),
                           str(cfg_path))
        changes = _config_changes(old.model_dump(mode="json"), config.model_dump(mode="json"),
                                  free)
        if changes:
            raise ConfigError(f"cannot resume {run_dir} with a different config; changed: "
                              + "; ".join(changes))
    seed_everything(config.seed)
    return started


def _check_pretrained(config: ExperimentConfig, num_classes: int) -> None:
    """A ``teacher.pretrained`` weights file exists and fits the architecture (checked before
    the run folder is written, so a wrong file leaves nothing behind)."""
    t, m = config.teacher, config.model
    if t.pretrained is None or t.pretrained == "torchvision":
        return
    path = resolve_weights(t.pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"teacher.pretrained: weights file {path} does not exist")
    with torch.random.fork_rng():  # building the probe must not move the run's generators
        _transfer(build_model(m.arch, num_classes, **m.kwargs), load_state_dict(path), str(path))


def _write_run_info(config: ExperimentConfig, run_dir: Path, started: bool,
                    ctx: DistContext) -> None:
    """``config.yaml`` and ``environment.json`` (appended to when the run resumes), written
    by rank 0 once every process has validated the config."""
    ctx.barrier()
    if not ctx.is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    for p in remove_stale_temporaries(run_dir):
        log.info("removed %s, left by an interrupted save", p)
    atomic_write_text(run_dir / "config.yaml", dump_config(config))
    env = environment_info()
    env["world_size"] = ctx.world_size
    env["device"] = str(ctx.device)
    env_path = run_dir / "environment.json"
    if started and env_path.is_file():
        first = read_json(env_path)
        first.setdefault("resumed", []).append(env)
        env = first
    write_json(env_path, env)


def _setup(config: ExperimentConfig, ctx: DistContext) -> _Setup:
    """Build the target data and check the layer (before any training)."""
    d = config.data
    train_set = _build_dataset(d.name, d.train_split, d.root, d.image_size, d.options, d.preload)
    val_set = _build_dataset(d.name, d.val_split, d.root, d.image_size, d.options, d.preload)
    num_classes = _num_classes(train_set, f"dataset {d.name!r} ({d.train_split})")
    m = config.model
    probe = build_model(m.arch, num_classes, **m.kwargs)
    layer = resolve_layer_name(probe, m.layer, m.arch)
    track = [resolve_layer_name(probe, t, m.arch) for t in m.track_layers]
    upstream = set(upstream_parameters(probe, layer, d.image_size))
    has_above = any(n not in upstream for n, _ in probe.named_parameters())
    del probe

    def init(key: str, classes: int = num_classes) -> nn.Module:
        torch.manual_seed(derive_seed(config.seed, "init", key))
        return build_model(m.arch, classes, **m.kwargs)

    common = {"ctx": ctx, "seed": config.seed, "arch": m.arch, "model_kwargs": m.kwargs,
              "layer": layer, "track_layers": track}
    return _Setup(train_set, val_set, num_classes, layer, has_above, common, init)


def _summary_head(config: ExperimentConfig, run_dir: Path, ctx: DistContext, s: _Setup
                  ) -> dict[str, Any]:
    m = config.model
    return {"run_dir": str(run_dir), "name": config.name, "seed": config.seed,
            "world_size": ctx.world_size, "device": str(ctx.device), "layer": s.layer,
            "arch": m.arch, "num_classes": s.num_classes, "models": {}}


def _finish(summary: dict[str, Any], run_dir: Path, ctx: DistContext, t_start: float) -> None:
    summary["ranks_identical"] = all(v.get("ranks_identical") is not False
                                     for v in summary["models"].values())
    summary["seconds_this_session"] = time.perf_counter() - t_start
    if ctx.is_main:
        write_json(run_dir / "summary.json", summary)
    ctx.barrier()


def _train(config: ExperimentConfig, run_dir: Path, resume: bool, ctx: DistContext,
           teacher_run: Path | None = None) -> Path:
    t_start = time.perf_counter()
    if teacher_run is not None and not (teacher_run / "teacher" / "last.pt").is_file():
        raise FileNotFoundError(f"the shared teacher {teacher_run} is not trained (no "
                                "teacher/last.pt); train it first with train_teacher")
    started = _start(config, run_dir, resume, ctx)
    setup = _setup(config, ctx)
    if teacher_run is None:
        _check_pretrained(config, setup.num_classes)
    _write_run_info(config, run_dir, started, ctx)
    summary = _summary_head(config, run_dir, ctx, setup)
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
    _finish(summary, run_dir, ctx, t_start)
    return run_dir


def _train_teacher(config: ExperimentConfig, run_dir: Path, s: _Setup, resume: bool
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """Pre-train (or load) and fine-tune the teacher; returns it and its summary."""
    d, m, t = config.data, config.model, config.teacher
    t_optim = config.optim.merged(t.optim)
    init, num_classes = s.init, s.num_classes
    phases: list[Phase] = []
    if t.pretrained is None and t.pretrain_epochs > 0:
        src = d.source
        size = src.image_size or d.image_size
        src_train = _build_dataset(src.name, src.split, src.root, size, src.options, src.preload)
        src_val = (_build_dataset(src.name, src.val_split, src.root, size, src.options,
                                  src.preload)
                   if src.val_split else None)
        src_classes = _num_classes(src_train, f"source dataset {src.name!r} ({src.split})")

        def new_head(model: nn.Module) -> nn.Module:
            fresh = init("teacher-head")
            return _transfer(fresh, {k: v.cpu() for k, v in model.state_dict().items()},
                             "the pre-trained teacher")

        phases.append(Phase("pretrain", t.pretrain_epochs, "ce", src_train, src_val, src_classes,
                            t_optim.merged(t.pretrain_optim), keep={t.pretrain_epochs},
                            subdir="pretrain"))
        phases.append(Phase("finetune", t.epochs, "ce", s.train_set, s.val_set, num_classes,
                            t_optim, keep=_keep(config, t.epochs), tracked=True,
                            prepare=new_head))
        teacher_init = lambda: init("teacher", src_classes)  # noqa: E731
    else:
        if t.pretrained is None:
            log.warning("teacher: no pretrained weights and no pre-training: the teacher is "
                        "trained from scratch on the target, like the baseline")
        phases.append(Phase("finetune", t.epochs, "ce", s.train_set, s.val_set, num_classes,
                            t_optim, keep=_keep(config, t.epochs), tracked=True))

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
            return _transfer(init("teacher-head"), load_state_dict(path), str(path))

    trainer = ModelTrainer("teacher", run_dir / "teacher", phases, **s.common)
    teacher = trainer.run(teacher_init, resume=resume)
    return teacher, _model_summary(trainer)


def _train_pair(config: ExperimentConfig, run_dir: Path, s: _Setup, teacher: nn.Module,
                resume: bool) -> dict[str, Any]:
    """Train the baseline and the student of one seed; returns their summaries."""
    out: dict[str, Any] = {}
    init, num_classes, train_set, val_set = s.init, s.num_classes, s.train_set, s.val_set
    b = config.baseline
    base_key = "scratch" if config.student.same_init_as_baseline else "baseline"
    baseline_trainer = ModelTrainer(
        "baseline", run_dir / "baseline",
        [Phase("train", b.epochs, "ce", train_set, val_set, num_classes,
               config.optim.merged(b.optim), keep=_keep(config, b.epochs), tracked=True)],
        **s.common)
    baseline_trainer.run(lambda: init(base_key), resume=resume)
    out["baseline"] = _model_summary(baseline_trainer)

    st = config.student
    s_optim = config.optim.merged(st.optim)
    student_key = "scratch" if st.same_init_as_baseline else "student"
    if st.mode == "feature":
        phases = [Phase("phase1", st.phase1_epochs, "feature", train_set, val_set, num_classes,
                        s_optim, keep=_keep(config, st.phase1_epochs), tracked=True,
                        freeze="above")]
        if st.phase2_epochs > 0 and s.has_above:
            phases.append(Phase("phase2", st.phase2_epochs, "ce", train_set, val_set,
                                num_classes, s_optim, keep=_keep(config, st.phase2_epochs),
                                subdir="phase2", freeze="upstream"))
        elif not s.has_above:
            log.info("student: layer %s is the last layer, so there is no phase 2", s.layer)
    else:
        phases = [Phase("phase1", st.phase1_epochs, st.mode, train_set, val_set, num_classes,
                        s_optim, keep=_keep(config, st.phase1_epochs), tracked=True)]
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
        out[role] = _model_summary(trainer)
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


def _model_summary(trainer: ModelTrainer) -> dict[str, Any]:
    from kdexplain.train.checkpoints import list_checkpoints

    d = trainer.dir
    final = trainer.history[-1] if trainer.history else {}
    out: dict[str, Any] = {
        "final_val_acc": final.get("val_acc"),
        "final_val_loss": final.get("val_loss"),
        "phases": trainer.history,
        "ranks_identical": trainer.ranks_identical,
        "last": str(d / "last.pt"),
    }
    if trainer.ctx.is_main:
        out["checkpoints"] = [str(p) for _, p in list_checkpoints(d)]
        for p in trainer.phases:
            if p.subdir:
                out[f"checkpoints_{p.subdir}"] = [str(q) for _, q in list_checkpoints(d, p.subdir)]
    return out


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


def format_summary(summary: dict[str, Any]) -> str:
    """A readable table of a run's ``summary.json``: one row per model and phase."""
    from tabulate import tabulate

    rows = []
    for role in ALL_ROLES:
        info = summary.get("models", {}).get(role)
        if not info:
            continue
        for ph in info.get("phases", []):
            acc = ph.get("val_acc")
            loss = ph.get("val_loss")
            ips = ph.get("images_per_second")
            rows.append([role, ph["phase"], ph["epochs"],
                         "-" if acc is None else f"{100 * acc:.1f}%",
                         "-" if loss is None else f"{loss:.4g}",
                         "-" if ips is None else f"{ips:,.0f}",
                         f"{ph.get('seconds', 0.0):.1f}"])
    head = ["model", "phase", "epochs", "val acc", "val loss", "train img/s", "seconds"]
    text = tabulate(rows, headers=head, tablefmt="simple")
    return f"run {summary.get('run_dir')} (layer {summary.get('layer')}, seed {summary.get('seed')}, " \
           f"{summary.get('world_size')} process(es) on {summary.get('device')})\n{text}"
