"""How the perturbed rows are laid out and chunked: memory format and rows per forward pass."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["CPU_CHUNK_BYTES", "GPU_CHUNK_BYTES", "MAX_DEFAULT_ROWS", "activation_bytes_per_row",
           "default_max_batch", "resolve_memory_format"]


#: Activation bytes per forward chunk when ``max_batch`` is not given. On a CPU the
#: convolutions and their backward are memory-bound: a chunk whose activations fit the last
#: level cache runs about twice as fast per image as one that spills (kdnet at 64 px:
#: 32 rows, reports/performance.md). On a GPU the bound only caps memory.
CPU_CHUNK_BYTES = 32 * 2**20
GPU_CHUNK_BYTES = 2 * 2**30
MAX_DEFAULT_ROWS = 512


def activation_bytes_per_row(phi: Callable[[torch.Tensor], torch.Tensor], model: nn.Module,
                             x: torch.Tensor) -> int:
    """Bytes of every module output on the way to the layer, for one input row."""
    total = 0

    def count(module: nn.Module, args: tuple, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor) and not list(module.children()):
            total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            phi(x[:1])
    finally:
        for h in handles:
            h.remove()
    return max(total, x[:1].numel() * x.element_size())


def default_max_batch(device: str | torch.device, bytes_per_row: int) -> int:
    """Rows per forward pass when ``max_batch`` is not given.

    The rows whose activations (``bytes_per_row`` each) fill :data:`CPU_CHUNK_BYTES` on a
    CPU or :data:`GPU_CHUNK_BYTES` elsewhere, between 1 and :data:`MAX_DEFAULT_ROWS`.
    """
    budget = CPU_CHUNK_BYTES if torch.device(device).type == "cpu" else GPU_CHUNK_BYTES
    return int(min(MAX_DEFAULT_ROWS, max(1, budget // max(1, bytes_per_row))))


def resolve_memory_format(memory_format: str, model: nn.Module,
                          device: str | torch.device) -> torch.memory_format:
    """The layout of the perturbed images (see :func:`quantify`'s ``memory_format``)."""
    if memory_format == "channels_last":
        return torch.channels_last
    if memory_format == "contiguous":
        return torch.contiguous_format
    if memory_format != "auto":
        raise ValueError(f"memory_format must be 'auto', 'channels_last' or 'contiguous', "
                         f"got {memory_format!r}")
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    on_cpu = torch.device(device).type == "cpu"
    return torch.channels_last if (has_conv and on_cpu) else torch.contiguous_format
