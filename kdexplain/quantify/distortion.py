"""The distortion ``D(sigma)`` of SPEC section 3, and its normaliser ``D0``.

:class:`Distortion` owns what does not change during an optimisation: the frozen truncated
models (weights without gradients, the forward pass stopped at the layer), the clean
images and their clean features ``phi(x)``. It turns a chunk of (image, sample) rows into
the per-row distortion ``mean_d (phi_d(x~) - phi_d(x))^2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack

import torch
from torch import nn

from kdexplain.models.features import LayerFeature, frozen
from kdexplain.quantify.noise import NoiseStreams, Row, row_chunks
from kdexplain.quantify.result import upsample_grid

__all__ = ["Distortion"]


class Distortion:
    """Per-row distortion of K checkpoints on B clean images.

    Parameters
    ----------
    models : list of nn.Module
        K checkpoints of one architecture (the same object may appear twice).
    layer, arch : str
        The analysed layer (path or alias) and the architecture for aliases.
    x : Tensor (B, C, H, W)
        The clean images, on the device.
    transform : callable
        Applied to the layer's output before comparing (ReLU in the original).
    layout : torch.memory_format
        Layout of the perturbed batches.
    stack : ExitStack
        Owns the models' frozen state and hooks; both are undone when it closes.
    """

    def __init__(self, models: Sequence[nn.Module], layer: str, arch: str | None,
                 x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor],
                 layout: torch.memory_format, stack: ExitStack) -> None:
        self.x = x
        self.transform = transform
        self.layout = layout
        self.feats: list[LayerFeature] = []
        by_id: dict[int, LayerFeature] = {}
        for m in models:
            if id(m) not in by_id:  # the same module object given twice shares one hook
                m.to(x.device)
                stack.enter_context(frozen(m))
                by_id[id(m)] = stack.enter_context(LayerFeature(m, layer, arch))
            self.feats.append(by_id[id(m)])
        self.layer = self.feats[0].layer
        self.f0: list[torch.Tensor] = []

    @property
    def checkpoints(self) -> int:
        return len(self.feats)

    def feature(self, k: int, xt: torch.Tensor) -> torch.Tensor:
        """``transform(phi_k(xt))``, shape ``(rows, *feature)``."""
        return self.transform(self.feats[k](xt.contiguous(memory_format=self.layout)))

    @torch.no_grad()
    def compute_clean(self, max_rows: int) -> None:
        """The clean features ``f0[k]``, ``(B, *feature)``, in chunks of ``max_rows``."""
        B = self.x.shape[0]
        self.f0 = [torch.cat([self.feature(k, self.x[i:i + max_rows]) for i in range(0, B, max_rows)])
                   for k in range(self.checkpoints)]

    def rows(self, k: int, sigma_of: dict[int, torch.Tensor], rows: Sequence[Row],
             noise: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean_d (phi_d(x~) - phi_d(x))^2`` for every (image, sample) row of ``rows``.

        Parameters
        ----------
        k : int
            Checkpoint.
        sigma_of : dict image -> Tensor (g, g)
            The sigma of each image of ``rows`` (differentiable).
        rows : sequence of ``(image, first_sample, stop_sample)``
        noise : sequence of Tensor (s1 - s0, C, H, W)
            The noise of each entry of ``rows``.

        Returns
        -------
        idx : LongTensor (R,)
            The image of each row.
        sq : Tensor (R,)
            The per-row distortion.
        """
        dev = self.x.device
        H, W = self.x.shape[-2:]
        imgs = [b for b, _, _ in rows]
        counts = torch.tensor([s1 - s0 for _, s0, s1 in rows], device=dev)
        idx = torch.repeat_interleave(torch.tensor(imgs, device=dev), counts)
        up = upsample_grid(torch.stack([sigma_of[b] for b in imgs]), (H, W))  # (entries, H, W)
        eps = torch.cat(list(noise)) if len(noise) > 1 else noise[0]  # (R, C, H, W)
        xt = torch.addcmul(self.x[idx], torch.repeat_interleave(up, counts, 0)[:, None], eps)
        sq = (self.feature(k, xt) - self.f0[k][idx]).pow(2).flatten(1).mean(1)
        return idx, sq

    @torch.no_grad()
    def normaliser(self, streams: NoiseStreams, sigma_init: float, grid: int, n0: int,
                   max_rows: int) -> torch.Tensor:
        """``D0 = D(sigma_init * 1)`` per checkpoint and image, ``(K, B)``, from ``n0`` samples."""
        K, B = self.checkpoints, self.x.shape[0]
        d0 = torch.zeros(K, B, device=self.x.device)
        sig0 = torch.full((grid, grid), sigma_init, device=self.x.device)
        for chunk in row_chunks(range(B), n0, max_rows):
            noise = streams.rows(chunk, n0)
            for k in range(K):
                idx, sq = self.rows(k, {b: sig0 for b, _, _ in chunk}, chunk, noise)
                d0[k].index_add_(0, idx, sq)
        return d0 / n0
