"""One epoch of training: the step loop, with a check for a non-finite loss."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from kdexplain.train.distributed import DistContext
from kdexplain.train.phase import EpochResult, Phase, PhaseRun
from kdexplain.utils import progress

__all__ = ["CHECK_EVERY", "NonFiniteLossError", "check_finite", "train_epoch"]

#: Steps between two checks for a non-finite loss (each check reads one flag from the device).
CHECK_EVERY = 25


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite; the checkpoints written before stay intact."""


def train_epoch(st: PhaseRun, ctx: DistContext, role: str, epoch: int, global_step: int,
                last_path: Path) -> EpochResult:
    """One pass of ``role`` over the training shard; losses stay on the device (checked every
    :data:`CHECK_EVERY` steps; ``last_path`` is named when one is not finite)."""
    dev = ctx.device
    phase, opt_cfg, loader = st.phase, st.phase.optim, st.train_loader
    optimizer, scaler, traj = st.optimizer, st.scaler, st.traj
    use_cuda = dev.type == "cuda"
    t0 = time.perf_counter()
    losses: list[torch.Tensor] = []
    stats = torch.zeros(3, dtype=torch.float64, device=dev)  # loss sum, correct, count
    checked = 0
    n_global = len(loader.sampler) * ctx.world_size
    bar = progress(total=n_global, desc=f"{role} {phase.name} {epoch}/{phase.epochs}",
                   unit="img", leave=False, enable=None if ctx.is_main else False)
    try:
        for i, (x, y) in enumerate(loader):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if opt_cfg.channels_last and use_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with st.autocast():
                loss, z = st.objective(st.ddp, st.teacher_fn, x, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if opt_cfg.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(st.params, opt_cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if traj is not None:
                traj.step()
            loss = loss.detach()
            losses.append(loss)
            stats[0] += loss.double() * len(y)
            if z is not None:
                stats[1] += (z.detach().argmax(1) == y).sum()
            stats[2] += len(y)
            bar.update(len(y) * ctx.world_size)
            if (i + 1) % CHECK_EVERY == 0:
                check_finite(losses, checked, phase, epoch, global_step, ctx, role, last_path)
                checked = len(losses)
                bar.set_postfix(loss=f"{float(losses[-1]):.4g}", refresh=False)
        check_finite(losses, checked, phase, epoch, global_step, ctx, role, last_path)
    finally:
        bar.close()
    ctx.all_sum(stats)
    n = max(float(stats[2]), 1.0)
    acc = float(stats[1]) / n if st.objective.has_accuracy else None
    return EpochResult(loss=float(stats[0]) / n, acc=acc, images=int(stats[2]),
                       seconds=time.perf_counter() - t0)


def check_finite(losses: list[torch.Tensor], start: int, phase: Phase, epoch: int,
                 global_step: int, ctx: DistContext, role: str, last_path: Path) -> None:
    """Raise :class:`NonFiniteLossError` when a loss from ``losses[start:]`` on any process is
    NaN or infinite (a collective: every process calls it)."""
    if start >= len(losses):
        bad_local = torch.zeros((), device=ctx.device)
        recent = None
    else:
        recent = torch.stack(losses[start:])
        bad_local = (~torch.isfinite(recent)).any().float()
    if float(ctx.all_max(bad_local.clone())) == 0:
        return
    step = None
    if recent is not None and bool(bad_local):
        idx = int(torch.nonzero(~torch.isfinite(recent))[0, 0])
        step = start + idx + 1
    where = (f"step {step} of the epoch (global step {global_step + step})" if step
             else "a step on another process")
    kept = sorted(e for e in phase.keep if e < epoch)
    raise NonFiniteLossError(
        f"{role}: the {phase.name} loss became non-finite (NaN or inf) in epoch "
        f"{epoch}, {where}. Training stopped; the checkpoints written before "
        f"(epochs {kept} of this phase, and {last_path}) are intact. Lower the "
        "learning rate (optim.lr), or set optim.grad_clip, then run again with --resume.")
