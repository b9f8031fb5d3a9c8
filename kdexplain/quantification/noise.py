"""The noise streams: one generator per image, so results never depend on batching.

Each image has its own stream, seeded by ``derive_seed(seed, "noise", key)`` where ``key``
is the image's key (by default a hash of its pixels). The stream draws ``d0_samples`` noise
images for ``D0`` first, then ``samples`` noise images per optimisation step, each draw in
blocks of :data:`NOISE_BLOCK`. The same noise is shared by every checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from kdexplain.utils.seed import derive_seed

__all__ = ["NOISE_BLOCK", "NoiseStreams", "Row", "row_chunks"]

#: Noise images are drawn in blocks of this many samples (see the module docstring).
NOISE_BLOCK = 16

#: ``(image, first_sample, stop_sample)``: the rows of one image inside a chunk.
Row = tuple[int, int, int]


class NoiseStreams:
    """One generator per image; draws ``(n, C, H, W)`` standard normal noise in fixed blocks.

    Parameters
    ----------
    keys : sequence of str
        The images' keys (one stream each).
    seed : int
    shape : tuple of int
        ``(C, H, W)`` of one noise image.
    device : torch.device
    stream : str
        The stream's name in :func:`derive_seed`.
    """

    def __init__(self, keys: Sequence[str], seed: int, shape: tuple[int, ...],
                 device: torch.device, stream: str = "noise") -> None:
        self.shape = tuple(shape)
        self.device = device
        self.keys, self.seed = list(keys), seed
        self.gens = []
        for key in keys:
            g = torch.Generator(device=device)
            g.manual_seed(derive_seed(seed, stream, key))
            self.gens.append(g)
        self._held: dict[int, torch.Tensor] = {}

    def draw(self, b: int, n: int, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """``n`` standard normal draws of ``shape`` (default: an image) from image b's stream."""
        shape = self.shape if shape is None else tuple(shape)
        blocks = []
        for start in range(0, n, NOISE_BLOCK):
            m = min(NOISE_BLOCK, n - start)
            blocks.append(torch.randn((m, *shape), generator=self.gens[b], device=self.device))
        return torch.cat(blocks) if len(blocks) > 1 else blocks[0]

    def rows(self, chunk: Sequence[Row], n: int) -> list[torch.Tensor]:
        """The noise of each entry of a chunk, ``(s1 - s0, C, H, W)`` each, for ``n`` samples.

        One draw of n samples per image and step: an image whose rows span several chunks
        keeps its draw until the chunk that holds its last row.
        """
        parts = []
        for b, s0, s1 in chunk:
            if s0 == 0:
                self._held[b] = self.draw(b, n)
            parts.append(self._held[b][s0:s1])
            if s1 == n:
                del self._held[b]
        return parts


def row_chunks(images: Sequence[int], samples: int,
               sizes: Iterator[int] | int) -> Iterator[list[Row]]:
    """Split the (image, sample) rows of ``images`` into chunks.

    Parameters
    ----------
    images : sequence of int
    samples : int
        Rows per image.
    sizes : int or iterator of int
        Rows per chunk: a constant, or the size of each next chunk (asked lazily, once per
        chunk, so a calibration can change it between chunks).

    Yields
    ------
    list of ``(image, first_sample, stop_sample)``
    """
    next_size = (lambda: sizes) if isinstance(sizes, int) else (lambda: next(sizes))
    cur: list[Row] = []
    room = None
    for b in images:
        s = 0
        while s < samples:
            if room is None:
                room = max(1, int(next_size()))
            take = min(samples - s, room)
            cur.append((b, s, s + take))
            s += take
            room -= take
            if room == 0:
                yield cur
                cur, room = [], None
    if cur:
        yield cur
