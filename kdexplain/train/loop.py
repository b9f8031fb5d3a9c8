"""Training one model through its phases, with checkpoints, records and exact resume.

A model (``teacher``, ``student`` or ``baseline``) is trained in one or more phases
(:class:`Phase`): the teacher's ``pretrain`` and ``finetune``, the baseline's ``train``, the
student's ``phase1`` and ``phase2``. Within a phase, epoch 0 is the state before any step
of that phase; after every epoch the model is evaluated, the records are appended and the
full state (weights, optimiser, scheduler, gradient scaler, trajectory, every process's
random-number-generator states) is written atomically to ``last.pt``, and to
``checkpoints/[<phase>/]epoch_XXXX.pt`` when the epoch is kept. A resumed run continues
from ``last.pt`` and, on CPU with a fixed seed, reproduces the uninterrupted run bit for bit:
the shuffling of epoch ``e`` depends only on (seed, model, phase, e) and the generators are
restored.

The training step never waits for the device: losses, accuracies and weight-step norms
stay on the device and are read every :data:`~kdexplain.train.epoch.CHECK_EVERY` steps
(to catch a non-finite loss early) and at the end of the epoch.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from kdexplain.data.preloaded import collate_image_label
from kdexplain.models import build_model
from kdexplain.train.checkpoints import capture_rng, checkpoint_path, restore_rng
from kdexplain.train.distributed import DistContext, scaled_lr, state_checksum
from kdexplain.train.epoch import train_epoch
from kdexplain.train.features import TruncatedModel, check_feature_shapes, upstream_parameters
from kdexplain.train.objectives import make_objective
from kdexplain.train.optim import build_optimizer, build_scheduler
from kdexplain.train.phase import Phase, PhaseRun
from kdexplain.train.records import ModelRecords
from kdexplain.train.trajectory import WeightTrajectory
from kdexplain.utils import (
    atomic_write_bytes,
    derive_seed,
    load_torch_file,
    progress,
    seed_everything,
)

__all__ = ["ModelTrainer"]

log = logging.getLogger("kdexplain.train")

class ModelTrainer:
    """Train one model (a role of the triplet) through its phases.

    Parameters
    ----------
    role : str
        ``teacher``, ``student`` or ``baseline``; names the folder and the random streams.
    model_dir : Path
        ``RUN_DIR/<role>``.
    phases : list of Phase
        In training order.
    ctx : DistContext
    seed : int
        The run's seed.
    arch, model_kwargs : str, dict
        To rebuild the model on resume and to store in checkpoints.
    layer : str
        Resolved module path of the analysed (and, for the student, distilled) layer.
    track_layers : list of str
        Further resolved module paths whose trajectory is recorded.
    teacher : nn.Module, optional
        The trained teacher (objectives ``feature``, ``soft``, ``logit_l2``).
    temperature, soft_weight : float, optional
        For ``soft`` (required there; from the config's ``student`` section).
    """

    def __init__(self, role: str, model_dir: Path, phases: list[Phase], ctx: DistContext,
                 seed: int, arch: str, model_kwargs: dict, layer: str,
                 track_layers: list[str] | None = None, teacher: nn.Module | None = None,
                 temperature: float | None = None, soft_weight: float | None = None) -> None:
        if not phases:
            raise ValueError(f"{role}: no phase to train")
        self.role = role
        self.dir = Path(model_dir)
        self.phases = phases
        self.ctx = ctx
        self.seed = int(seed)
        self.arch = arch
        self.model_kwargs = dict(model_kwargs)
        self.layer = layer
        self.track_layers = [t for t in (track_layers or []) if t != layer]
        self.teacher = teacher
        self.temperature = None if temperature is None else float(temperature)
        self.soft_weight = None if soft_weight is None else float(soft_weight)
        self.records = ModelRecords(self.dir, [p.name for p in phases])
        tracked = [p.name for p in phases if p.tracked]
        self.tracked_phase = tracked[0] if tracked else None
        self.history: list[dict] = []
        self.ranks_identical: bool | None = None

    # ---------------------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.dir / "last.pt"

    def run(self, init_model: Callable[[], nn.Module], resume: bool = False) -> nn.Module:
        """Train through every phase; with ``resume``, continue from ``last.pt``.

        Parameters
        ----------
        init_model : callable
            ``() -> nn.Module``, the model at the start of the first phase (called only
            when the run does not resume from a checkpoint).

        Returns
        -------
        nn.Module
            The trained model (on the context's device).
        """
        state = None
        if resume and self.last_path.is_file():
            state = self._load_last()
        if state is None:
            # Rows that an interrupted run wrote before this model's first last.pt (the
            # epoch-0 window) belong to no resumable state: start the records afresh.
            if self.ctx.is_main:
                self.records.reset()
            self.ctx.barrier()
            model, start, fresh = init_model(), 0, True
        else:
            names = [p.name for p in self.phases]
            if state["phase"] not in names:
                raise ValueError(f"{self.last_path} is from phase {state['phase']!r}, which this "
                                 f"config's {self.role} does not have ({', '.join(names)})")
            start = names.index(state["phase"])
            phase = self.phases[start]
            model = build_model(self.arch, phase.num_classes, **self.model_kwargs)
            model.load_state_dict(state["model"])
            self.history = list(state.get("history", []))
            self.ranks_identical = state.get("ranks_identical")
            fresh = state["epoch"] >= phase.epochs
            if fresh:
                start += 1
            if self.ctx.is_main:
                self.records.truncate(state["phase"], int(state["epoch"]),
                                      int(state["global_step"]), self.tracked_phase)
            self.ctx.barrier()
            if start < len(self.phases) or not fresh:
                log.info("%s: resuming after %s epoch %d", self.role, state["phase"], state["epoch"])
        for phase in self.phases[start:]:
            if fresh and phase.prepare is not None:
                model = phase.prepare(model)
            model = self._run_phase(model, phase, None if fresh else state)
            fresh = True
        return model.to(self.ctx.device)

    _STATE_KEYS = ("model", "optimizer", "scheduler", "epoch", "global_step", "phase")

    def _load_last(self) -> dict:
        """``last.pt``, checked to be a resume point of this trainer (clear errors otherwise)."""
        state = load_torch_file(self.last_path, what="resume point",
                                map_location=self.ctx.device)
        missing = [k for k in self._STATE_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            raise ValueError(f"{self.last_path} is not a kdexplain resume point (missing "
                             f"{', '.join(missing)}); delete it to retrain {self.role} from "
                             "its last kept checkpoint's start, or restore the original file")
        return state

    # ---------------------------------------------------------------------------------------
    def _run_phase(self, model: nn.Module, phase: Phase, state: dict | None) -> nn.Module:
        """Train ``model`` through ``phase`` (from its start, or from a resume ``state``)."""
        st = self._setup_phase(model, phase)
        try:
            first_epoch, global_step = (self._start_phase(st) if state is None
                                        else self._continue_phase(st, state))
            self._train_epochs(st, first_epoch, global_step)
        finally:
            st.close()
        return model

    def _trainable(self, model: nn.Module, phase: Phase, hw: tuple[int, ...]
                   ) -> list[nn.Module]:
        """Set ``requires_grad`` for what this phase trains; returns the frozen batch norms."""
        if phase.freeze == "none":
            for p in model.parameters():
                p.requires_grad_(True)
            return []
        names = [n for n, _ in model.named_parameters()]
        up = set(upstream_parameters(model, self.layer, hw))
        train_names = up if phase.freeze == "above" else set(names) - up
        if not train_names:
            raise ValueError(f"{self.role} {phase.name}: no parameter to train (layer "
                             f"{self.layer!r} is the last layer?)")
        for n, p in model.named_parameters():
            p.requires_grad_(n in train_names)
        if phase.freeze != "upstream":
            return []
        # Frozen batch norms keep their running statistics: the features the head
        # is trained on are exactly those of phase 1.
        return [m for m in model.modules()
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm))
                and all(not p.requires_grad for p in m.parameters())]

    def _setup_phase(self, model: nn.Module, phase: Phase) -> PhaseRun:
        """Everything one phase needs: networks, objective, optimiser, loaders, trajectory."""
        ctx, dev = self.ctx, self.ctx.device
        use_cuda = dev.type == "cuda"
        model.to(dev)
        if phase.optim.channels_last and use_cuda:
            model.to(memory_format=torch.channels_last)
        hw = tuple(phase.train_set[0]["image"].shape[-2:])
        flags = {n: p.requires_grad for n, p in model.named_parameters()}
        frozen_modules = self._trainable(model, phase, hw)
        params = [p for p in model.parameters() if p.requires_grad]

        objective = make_objective(phase.objective, self.temperature, self.soft_weight)
        if objective.needs_teacher and self.teacher is None:
            raise ValueError(f"{self.role} {phase.name}: objective {phase.objective} needs the teacher")
        if objective.feature_level:
            check_feature_shapes(self.teacher, model, self.layer, hw)
            net: nn.Module = TruncatedModel(model, self.layer)
            teacher_fn: nn.Module | None = TruncatedModel(self.teacher, self.layer)
        else:
            net, teacher_fn = model, self.teacher
        if self.teacher is not None:
            self.teacher.eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)

        opt_cfg = phase.optim
        lr = scaled_lr(opt_cfg.lr, ctx.world_size, opt_cfg.lr_scaling)
        optimizer = build_optimizer(params, opt_cfg, lr)
        scheduler = build_scheduler(optimizer, opt_cfg.schedule, phase.epochs)
        amp = bool(opt_cfg.amp and use_cuda)
        amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
        autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp else nullcontext
        traj = WeightTrajectory(model, [self.layer] + self.track_layers) if phase.tracked else None
        sampler, train_loader, val_loader = self._loaders(phase, use_cuda)
        return PhaseRun(phase=phase, model=model, net=net, teacher_fn=teacher_fn,
                         objective=objective, ddp=ctx.wrap(net), params=params, flags=flags,
                         frozen_modules=frozen_modules, optimizer=optimizer,
                         scheduler=scheduler, scaler=scaler, autocast=autocast, traj=traj,
                         sampler=sampler, train_loader=train_loader, val_loader=val_loader)

    def _loaders(self, phase: Phase, use_cuda: bool):
        ctx, opt_cfg = self.ctx, phase.optim
        sampler = DistributedSampler(
            phase.train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
            seed=derive_seed(self.seed, self.role, phase.name, "shuffle") % (2**31))
        loader_kw: dict[str, Any] = {"num_workers": opt_cfg.num_workers,
                                     "collate_fn": collate_image_label, "pin_memory": use_cuda}
        if opt_cfg.num_workers > 0:
            loader_kw["persistent_workers"] = False
        train_loader = DataLoader(phase.train_set, batch_size=opt_cfg.batch_size,
                                  sampler=sampler, drop_last=False, **loader_kw)
        val_loader = None
        if phase.val_set is not None and len(phase.val_set) > 0:
            shard = Subset(phase.val_set, list(range(ctx.rank, len(phase.val_set), ctx.world_size)))
            val_loader = DataLoader(shard, batch_size=opt_cfg.eval_batch_size or 2 * opt_cfg.batch_size,
                                    shuffle=False, **loader_kw)
        return sampler, train_loader, val_loader

    @torch.no_grad()
    def _evaluate(self, st: PhaseRun) -> tuple[float | None, float | None]:
        """Validation loss and accuracy (None where undefined) over every process's shard."""
        if st.val_loader is None:
            return None, None
        dev, opt_cfg = self.ctx.device, st.phase.optim
        st.model.eval()
        tot = torch.zeros(3, dtype=torch.float64, device=dev)  # loss sum, correct, count
        for x, y in st.val_loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if opt_cfg.channels_last and dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with st.autocast():
                loss, z = st.objective(st.net, st.teacher_fn, x, y)
            tot[0] += loss.double() * len(y)
            if z is not None:
                tot[1] += (z.argmax(1) == y).sum()
            tot[2] += len(y)
        self.ctx.all_sum(tot)
        n = float(tot[2])
        if n == 0:
            return None, None
        acc = float(tot[1]) / n if st.objective.has_accuracy else None
        return float(tot[0]) / n, acc

    def _start_phase(self, st: PhaseRun) -> tuple[int, int]:
        """Record epoch 0 (the state before any step of the phase)."""
        seed_everything(derive_seed(self.seed, self.role, st.phase.name, "rank", self.ctx.rank))
        t0 = time.perf_counter()
        val_loss, val_acc = self._evaluate(st)
        if st.traj is not None:
            st.traj.start()
        row = {"epoch": 0, "phase": st.phase.name, "train_loss": None, "train_acc": None,
               "val_loss": val_loss, "val_acc": val_acc, "lr": st.optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        if st.traj is not None:
            st.dist_rows.append(st.traj.distance_row(0, 0))
        self._end_epoch(st, 0, 0, row, [st.traj.initial_row()] if st.traj else [])
        return 1, 0

    def _continue_phase(self, st: PhaseRun, state: dict) -> tuple[int, int]:
        """Restore optimiser, scheduler, scaler, trajectory and generators from ``state``."""
        ctx = self.ctx
        st.optimizer.load_state_dict(state["optimizer"])
        st.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            st.scaler.load_state_dict(state["scaler"])
        if st.traj is not None:
            st.traj.load_state_dict(state["trajectory"])
        rngs = state.get("rng") or []
        if len(rngs) == ctx.world_size:
            restore_rng(rngs[ctx.rank])
        else:
            log.warning("%s: the checkpoint holds the generator states of %d processes, this "
                        "run has %d: the continuation is valid but not bit-identical to an "
                        "uninterrupted run", self.role, len(rngs), ctx.world_size)
            seed_everything(derive_seed(self.seed, self.role, st.phase.name, "rank", ctx.rank,
                                        "resume", state["epoch"]))
        st.dist_rows = list(state.get("weight_distance") or [])
        st.timing = dict(state.get("timing") or st.timing)
        return int(state["epoch"]) + 1, int(state["global_step"])

    def _train_epochs(self, st: PhaseRun, first_epoch: int, global_step: int) -> None:
        phase = st.phase
        bar = progress(total=phase.epochs, initial=first_epoch - 1, unit="epoch",
                       desc=f"{self.role} {phase.name}", enable=None if self.ctx.is_main else False)
        try:
            for epoch in range(first_epoch, phase.epochs + 1):
                t0 = time.perf_counter()
                lr_now = st.optimizer.param_groups[0]["lr"]
                st.set_train_mode()
                st.sampler.set_epoch(epoch)
                ep = train_epoch(st, self.ctx, self.role, epoch, global_step, self.last_path)
                first_step = global_step + 1
                global_step += len(st.train_loader)
                st.scheduler.step()
                val_loss, val_acc = self._evaluate(st)
                st.timing["train_images"] += ep.images
                st.timing["train_seconds"] += ep.seconds
                traj_rows = st.traj.end_epoch(epoch, first_step) if st.traj is not None else []
                if st.traj is not None and epoch in phase.keep:
                    st.dist_rows.append(st.traj.distance_row(epoch, global_step))
                row = {"epoch": epoch, "phase": phase.name, "train_loss": ep.loss,
                       "train_acc": ep.acc, "val_loss": val_loss, "val_acc": val_acc, "lr": lr_now,
                       "seconds": time.perf_counter() - t0}
                st.timing["seconds"] += row["seconds"]
                self._end_epoch(st, epoch, global_step, row, traj_rows)
                log.info("%s %s epoch %d/%d: train_loss %.4g%s, val_loss %s, val_acc %s, lr %.3g, %.1fs",
                         self.role, phase.name, epoch, phase.epochs, ep.loss,
                         "" if ep.acc is None else f", train_acc {ep.acc:.3f}",
                         "-" if val_loss is None else f"{val_loss:.4g}",
                         "-" if val_acc is None else f"{val_acc:.3f}", lr_now, row["seconds"])
                bar.update(1)
                if val_acc is not None:
                    bar.set_postfix(val_acc=f"{val_acc:.3f}", refresh=False)
        finally:
            bar.close()

    # ---------------------------------------------------------------------------------------
    def _end_epoch(self, st: PhaseRun, epoch: int, global_step: int, row: dict,
                   traj_rows: list[dict]) -> None:
        """Records, then the checkpoint(s) of an epoch's end (``last.pt`` last)."""
        model, phase, traj, timing = st.model, st.phase, st.traj, st.timing
        traj_fields, dist_fields = st.fields
        dist_rows = st.dist_rows
        optimizer, scheduler, scaler = st.optimizer, st.scheduler, st.scaler
        rngs = self.ctx.gather_objects(capture_rng())  # collective: every process calls it
        if epoch == phase.epochs:
            # every process must hold the same weights (DDP keeps them in step)
            sums = self.ctx.gather_objects(state_checksum(model))
            identical = len(set(sums)) == 1
            self.ranks_identical = identical and self.ranks_identical is not False
            if not identical:
                raise RuntimeError(f"{self.role} {phase.name}: the processes ended with "
                                   "different weights; DDP lost synchronisation")
            result = {"phase": phase.name, "epochs": phase.epochs, **timing,
                      "images_per_second": (timing["train_images"] / timing["train_seconds"]
                                            if timing["train_seconds"] > 0 else None),
                      "val_loss": row["val_loss"], "val_acc": row["val_acc"],
                      "world_size": self.ctx.world_size}
            self.history = [h for h in self.history if h["phase"] != phase.name] + [result]
        if not self.ctx.is_main:
            return
        if traj is not None:
            self.records.add_trajectory(traj_fields, traj_rows)
        self.records.add_metrics(row)
        if traj is not None and epoch in phase.keep:
            self.records.write_distances(dist_fields, dist_rows)
        ckpt = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "epoch": epoch,
            "global_step": global_step,
            "phase": phase.name,
            "phases": [p.name for p in self.phases],
            "arch": self.arch,
            "num_classes": phase.num_classes,
            "model_kwargs": self.model_kwargs,
            "layer": self.layer,
            "role": self.role,
            "rng": rngs,
            "trajectory": traj.state_dict() if traj is not None else None,
            "weight_distance": list(dist_rows),
            "metrics": row,
            "timing": dict(timing),
            "history": list(self.history),
            "ranks_identical": self.ranks_identical,
            "seed": self.seed,
            "world_size": self.ctx.world_size,
            "sampler_epoch": epoch,
        }
        paths = [self.last_path]
        if epoch in phase.keep:
            paths.insert(0, checkpoint_path(self.dir, epoch, phase.subdir))
        self._save_bytes(ckpt, paths)

    @staticmethod
    def _save_bytes(obj: dict, paths: list[Path]) -> None:
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        for p in paths:  # last.pt goes last: it is the resume point
            atomic_write_bytes(p, data)

