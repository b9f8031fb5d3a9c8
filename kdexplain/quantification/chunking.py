"""How the perturbed rows are laid out and chunked: memory format and rows per forward pass."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["CPU_CHUNK_BYTES", "GPU_CHUNK_BYTES", "MAX_DEFAULT_ROWS", "MIN_CALIBRATED_ROWS",
           "ChunkSizer", "activation_bytes_per_row", "calibration_key", "default_max_batch",
           "memory_rows", "resolve_memory_format"]


#: Activation bytes per forward chunk when ``max_batch`` is not given. On a CPU the
#: convolutions and their backward are memory-bound: a chunk whose activations fit the last
#: level cache runs about twice as fast per image as one that spills (kdnet at 64 px:
#: 32 rows, reports/performance.md). On a GPU the bound only caps memory.
CPU_CHUNK_BYTES = 32 * 2**20
GPU_CHUNK_BYTES = 2 * 2**30
MAX_DEFAULT_ROWS = 512
#: The smallest chunk a calibration starts from (a single row wastes most of a CPU's cores).
MIN_CALIBRATED_ROWS = 4


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


#: Chunk sizes chosen by calibration, per (model class, layer, input shape, device, layout,
#: checkpoints): later calls with the same key (the units of a sweep) start from the choice.
_CALIBRATED: dict[tuple, int] = {}


def calibration_key(model: nn.Module, layer: str, x: torch.Tensor,
                    layout: torch.memory_format, checkpoints: int) -> tuple:
    """What the best chunk depends on: the model, the layer, the input, the device."""
    n_params = sum(p.numel() for p in model.parameters())
    return (type(model).__qualname__, n_params, layer, tuple(x.shape[1:]), str(x.device),
            str(layout), checkpoints)


class ChunkSizer:
    """Rows per forward pass: measured on the first chunks, then kept.

    The work is real (the timed chunks are chunks of the optimisation), so calibrating
    costs only the slower chunks it tries. Starting from ``start`` rows, the size doubles
    while the time per row falls by more than ``gain``; each size is timed on two chunks
    and the faster one counts (the first may pay for allocations). Sizes stay within
    ``limit`` rows (a memory bound). Once settled, the size is stored under ``key`` so the
    next call with the same model, layer, input and device starts there. A fixed size
    (``max_batch`` given) is never calibrated.

    Parameters
    ----------
    start : int
        The first size tried (the activation-footprint rule, :func:`default_max_batch`).
    limit : int
        Most rows per chunk (memory, and the rows of one step).
    key : tuple or None
        Cache key (:func:`calibration_key`); None = do not calibrate, always ``start``.
    sync : callable, optional
        Waits for the device before a time is read (``torch.cuda.synchronize``).
    gain : float
        Smallest relative improvement of the time per row that justifies a larger chunk.
    """

    def __init__(self, start: int, limit: int, key: tuple | None,
                 sync: Callable[[], None] | None = None, gain: float = 0.05) -> None:
        self.limit = max(1, int(limit))
        self.key = key
        self.sync = sync or (lambda: None)
        self.gain = gain
        cached = _CALIBRATED.get(key) if key is not None else None
        self.size = min(self.limit, max(1, int(cached or start)))
        self.settled = key is None or cached is not None or self.size >= self.limit
        self._best: tuple[float, int] | None = None  # (seconds per row, size)
        self._times: list[float] = []

    def record(self, rows: int, seconds: float) -> None:
        """The time one chunk of ``rows`` rows took (only full chunks count)."""
        if self.settled or rows != self.size:
            return
        self._times.append(seconds / rows)
        if len(self._times) < 2:
            return
        per_row, self._times = min(self._times), []
        if self._best is None or per_row < self._best[0] * (1 - self.gain):
            self._best = (per_row, self.size)
            if self.size < self.limit:
                self.size = min(self.limit, 2 * self.size)
                return
        self.size = self._best[1]
        self.settled = True
        if self.key is not None:
            _CALIBRATED[self.key] = self.size

    def timed(self) -> _ChunkTimer:
        """A context manager that times one chunk: ``with sizer.timed() as t: t.rows = n``."""
        return _ChunkTimer(self)


class _ChunkTimer:
    def __init__(self, sizer: ChunkSizer) -> None:
        self.sizer = sizer
        self.rows = 0

    def __enter__(self) -> _ChunkTimer:
        if not self.sizer.settled:
            self.sizer.sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and not self.sizer.settled:
            self.sizer.sync()
            self.sizer.record(self.rows, time.perf_counter() - self.t0)


def memory_rows(device: torch.device, bytes_per_row: int) -> int:
    """The most rows a chunk may hold: its activations (kept for the backward pass, about
    ``3 x bytes_per_row`` a row) within a quarter of the free memory (at most 8 GiB on a CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 4
    else:
        budget = min(8 * 2**30, _available_ram() // 4)
    return int(max(1, min(4096, budget // max(1, 3 * bytes_per_row))))


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30
