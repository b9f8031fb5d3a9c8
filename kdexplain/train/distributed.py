"""Distributed data parallel training under ``torchrun`` (gloo on CPU, nccl on CUDA).

``torchrun --nproc_per_node N -m kdexplain.cli train-triplet CONFIG ...`` starts N
processes; each reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment, trains
on its shard of every epoch (a ``DistributedSampler``) and averages gradients with DDP.
Only rank 0 writes files. Without these variables training runs in one process.

Learning-rate rule: ``optim.batch_size`` is per process, so the global batch is
``batch_size * world_size``; the learning rate is multiplied by ``world_size``
(``optim.lr_scaling: linear``, the default, Goyal et al. 2017), by its square root
(``sqrt``) or kept (``none``).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from kdexplain.utils.device import resolve_device

__all__ = ["DistContext", "scaled_lr", "state_checksum"]


def scaled_lr(lr: float, world_size: int, rule: str) -> float:
    """The learning rate for ``world_size`` processes under ``rule`` (linear, sqrt, none)."""
    if rule == "linear":
        return lr * world_size
    if rule == "sqrt":
        return lr * math.sqrt(world_size)
    if rule == "none":
        return lr
    raise ValueError(f"unknown lr_scaling {rule!r}; choose linear, sqrt or none")


@dataclass
class DistContext:
    """Where this process runs and who it is.

    Attributes
    ----------
    rank, world_size, local_rank : int
    device : torch.device
    initialized_here : bool
        Whether :meth:`setup` created the process group (then :meth:`close` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device: str = "auto") -> DistContext:
        """Read torchrun's environment, pick the device and join the process group.

        Parameters
        ----------
        device : {"auto", "cpu", "cuda"}
            ``auto``: CUDA when available. Under torchrun with CUDA each process takes
            ``cuda:LOCAL_RANK``.
        """
        use_cuda = resolve_device(device, "device").type == "cuda"  # clear errors for bad names
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local)
            dev = torch.device("cuda", local)
        else:
            dev = torch.device("cpu")
        ctx = cls(rank=rank, world_size=world, local_rank=local, device=dev)
        if world > 1 and not (dist.is_available() and dist.is_initialized()):
            dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                    device_id=dev if use_cuda else None)
            ctx.initialized_here = True
        return ctx

    def close(self) -> None:
        """Destroy the process group if :meth:`setup` created it."""
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()
            self.initialized_here = False

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over processes (in place; returned)."""
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_max(self, t: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def gather_objects(self, obj: object) -> list:
        """Every process's ``obj``, in rank order (on every process)."""
        if not self.distributed:
            return [obj]
        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: object) -> object:
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DDP when distributed (parameters without gradients are ignored)."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DDP(module, device_ids=ids)


@torch.no_grad()
def state_checksum(model: nn.Module) -> str:
    """A SHA-256 of the model's state dict (parameters and buffers, in key order)."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        flat = v.detach().cpu().contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()
