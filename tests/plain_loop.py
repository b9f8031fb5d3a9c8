"""A plain PyTorch training loop (nothing from ``kdexplain.train``) for the recorder's tests.

It takes the steps kdexplain's trainer takes for the baseline (cross-entropy) and a soft-target
student on the tiny config: the same initial weights (seeded as the trainer seeds them), the
same data order (``DistributedSampler`` with the trainer's shuffle seed), SGD with the
config's settings and the log-linear schedule, and Hinton's loss written out with torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from kdexplain.config import ExperimentConfig, load_config
from kdexplain.data import build_dataset
from kdexplain.models import build_model
from kdexplain.utils import derive_seed

ROOT = Path(__file__).resolve().parents[1]
PHASE = {"baseline": "train", "student": "phase1"}


def tiny_config(out_dir: Path, *overrides: str) -> ExperimentConfig:
    """configs/tiny.yaml with a soft-target student and no dropout (no random draws in a
    step, so the loop's steps depend only on the data order)."""
    return load_config(ROOT / "configs" / "tiny.yaml", [
        "name=plain", f"out_dir={out_dir.as_posix()}", "student.mode=soft",
        "model.kwargs={width: 4, hidden: 16, dropout: 0.0}", *overrides])


def tensors(cfg: ExperimentConfig, split: str) -> TensorDataset:
    """The split's images (N, 3, H, W) and labels (N,) as a TensorDataset."""
    d = cfg.data
    ds = build_dataset(d.name, split=split, root=d.root, image_size=d.image_size, **d.options)
    items = [ds[i] for i in range(len(ds))]
    return TensorDataset(torch.stack([it["image"] for it in items]),
                         torch.tensor([int(it["label"]) for it in items]))


def init_model(cfg: ExperimentConfig, num_classes: int) -> torch.nn.Module:
    """The initial weights the trainer gives S and B (``same_init_as_baseline``)."""
    torch.manual_seed(derive_seed(cfg.seed, "init", "scratch"))
    return build_model(cfg.model.arch, num_classes, **cfg.model.kwargs)


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TensorDataset) -> float:
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(data, 16))
    return correct / len(data)


def soft_loss(z: torch.Tensor, v: torch.Tensor, y: torch.Tensor, t: float, a: float):
    """``a T^2 KL(q_T(v) || q_T(z)) + (1 - a) CE(y, z)``."""
    kl = F.kl_div(F.log_softmax(z / t, dim=-1), F.log_softmax(v / t, dim=-1),
                  reduction="batchmean", log_target=True)
    return a * kl * (t * t) + (1.0 - a) * F.cross_entropy(z, y)


def train(model, role: str, cfg: ExperimentConfig, train_set, val_set, epochs: int, *,
          teacher=None, recorder=None, first_epoch: int = 1, state: dict | None = None,
          stop_after: int | None = None) -> dict:
    """Train ``model`` for ``epochs`` epochs; returns the loop's own checkpoint (weights,
    optimiser, scheduler, recorder) at the last epoch run. ``state``: resume from it."""
    o = cfg.optim
    sampler = DistributedSampler(train_set, num_replicas=1, rank=0, shuffle=True,
                                 seed=derive_seed(cfg.seed, role, PHASE[role], "shuffle") % 2**31)
    loader = DataLoader(train_set, batch_size=o.batch_size, sampler=sampler)
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum,
                          weight_decay=o.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 10.0 ** (-min(i, epochs - 1) / (epochs - 1)) if epochs > 1 else 1.0)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        recorder.load_state_dict(state["recorder"])
        first_epoch = state["epoch"] + 1
    elif recorder is not None:
        recorder.start(val_acc=accuracy(model, val_set))
    st = cfg.student
    last = {}
    for epoch in range(first_epoch, epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        total, n = 0.0, 0
        for x, y in loader:
            z = model(x).float()
            if teacher is None:
                loss = F.cross_entropy(z, y)
            else:
                with torch.no_grad():
                    v = teacher(x).float()
                loss = soft_loss(z, v, y, st.temperature, st.soft_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if recorder is not None:
                recorder.step()
            total, n = total + float(loss.detach()) * len(y), n + len(y)
        sched.step()
        if recorder is not None:
            recorder.end_epoch(epoch, train_loss=total / n, val_acc=accuracy(model, val_set))
        last = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "epoch": epoch,
                "recorder": recorder.state_dict() if recorder is not None else None}
        if stop_after is not None and epoch == stop_after:
            break
    return last
