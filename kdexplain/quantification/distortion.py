"""The distortion ``D(sigma)`` of docs/method.md section 3, and its normaliser ``D0``.

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
from kdexplain.quantification.noise import NoiseStreams, Row, row_chunks
from kdexplain.quantification.result import upsample_grid

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
    stacked : bool
        Run the K checkpoints as one batched forward: their weights stacked with
        ``torch.func.stack_module_state`` and ``vmap`` over ``functional_call``
        (:meth:`rows_stacked`). Needs K > 1 checkpoints of one class.
    """

    def __init__(self, models: Sequence[nn.Module], layer: str, arch: str | None,
                 x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor],
                 layout: torch.memory_format, stack: ExitStack, stacked: bool = False) -> None:
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
        #: ``(K, B, g, g)`` exact per-cell sensitivities when the linear control variate is on.
        self.sensitivities: torch.Tensor | None = None
        #: Keep each row's upsampled sigma of the last :meth:`rows` / :meth:`rows_stacked`
        #: call, with its gradient after a backward pass (:meth:`row_gradients`).
        self.track_rows = False
        self._rows_up: torch.Tensor | None = None
        self._stacked = _stacked_forward(models, self.feats[0]) if stacked else None

    @property
    def stacked(self) -> bool:
        """Whether the checkpoints run as one batched forward (:meth:`rows_stacked`)."""
        return self._stacked is not None

    @property
    def checkpoints(self) -> int:
        return len(self.feats)

    def feature(self, k: int, xt: torch.Tensor) -> torch.Tensor:
        """``transform(phi_k(xt))``, shape ``(rows, *feature)``."""
        return self.transform(self.feats[k](xt.contiguous(memory_format=self.layout)))

    @torch.no_grad()
    def compute_clean(self, max_rows: int) -> None:
        """The clean features ``f0[k]``, ``(B, *feature)``, in chunks of ``max_rows``."""
        self.check_depends_on_input()
        B = self.x.shape[0]
        self.f0 = [torch.cat([self.feature(k, self.x[i:i + max_rows]) for i in range(0, B, max_rows)])
                   for k in range(self.checkpoints)]

    def check_depends_on_input(self) -> None:
        """Refuse a layer whose feature does not depend on the image (no gradient to learn
        sigma from; torch would fail later with "does not require grad")."""
        x = self.x[:1].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            for k in range(self.checkpoints):
                if not self.feature(k, x).requires_grad:
                    raise ValueError(f"the output of layer {self.layer!r} does not depend on "
                                     "the input image (a constant, or computed without "
                                     "autograd); choose a layer the image flows through")

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
            The per-row distortion; with :attr:`sensitivities` set, minus its linearisation
            plus that linearisation's expectation (the control variate,
            :meth:`linear_rows`).
        """
        idx, up, eps = self._perturbation(sigma_of, rows, noise)
        self._track(up)
        xt = torch.addcmul(self.x[idx], up, eps)
        sq = (self.feature(k, xt) - self.f0[k][idx]).pow(2).flatten(1).mean(1)
        if self.sensitivities is not None:
            sigma = torch.stack([sigma_of[int(b)] for b in idx.tolist()])
            sq = (sq - self.linear_rows(k, idx, up * eps)
                  + self.linear_expectation(sigma, self.sensitivities[k, idx],
                                            self.f0[k][0].numel()))
        return idx, sq

    def _track(self, up: torch.Tensor) -> None:
        if self.track_rows and up.requires_grad:
            up.retain_grad()
            self._rows_up = up

    def row_gradients(self, grid: int) -> torch.Tensor:
        """After the backward pass of the last :meth:`rows` (or :meth:`rows_stacked`) call
        with :attr:`track_rows` on: each row's gradient in its cells' sigma, ``(R, g, g)``
        (``(K, R, g, g)`` stacked), of what was differentiated."""
        g = self._rows_up.grad
        H, W = g.shape[-2:]
        cells = g.sum(-3).unflatten(-2, (grid, H // grid)).unflatten(-1, (grid, W // grid))
        return cells.sum((-3, -1))

    def _perturbation(self, sigma_of: dict[int, torch.Tensor], rows: Sequence[Row],
                      noise: Sequence[torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The image of each row ``(R,)``, its upsampled sigma ``(R, 1, H, W)`` and its noise
        ``(R, C, H, W)``: the perturbation of a row is ``up * eps``."""
        dev = self.x.device
        H, W = self.x.shape[-2:]
        imgs = [b for b, _, _ in rows]
        counts = torch.tensor([s1 - s0 for _, s0, s1 in rows], device=dev)
        idx = torch.repeat_interleave(torch.tensor(imgs, device=dev), counts)
        up = upsample_grid(torch.stack([sigma_of[b] for b in imgs]), (H, W))  # (entries, H, W)
        eps = torch.cat(list(noise)) if len(noise) > 1 else noise[0]  # (R, C, H, W)
        return idx, torch.repeat_interleave(up, counts, 0)[:, None], eps

    def rows_stacked(self, sigma: torch.Tensor, rows: Sequence[Row],
                     noise: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`rows` for every checkpoint in one batched forward.

        Parameters
        ----------
        sigma : Tensor (K, B, g, g)
            Every checkpoint's sigma (differentiable).
        rows, noise
            As :meth:`rows`.

        Returns
        -------
        idx : LongTensor (R,)
        sq : Tensor (K, R)
        """
        dev = self.x.device
        H, W = self.x.shape[-2:]
        imgs = torch.tensor([b for b, _, _ in rows], device=dev)
        counts = torch.tensor([s1 - s0 for _, s0, s1 in rows], device=dev)
        idx = torch.repeat_interleave(imgs, counts)
        up = upsample_grid(sigma[:, imgs].flatten(0, 1), (H, W)).unflatten(0, (len(sigma), -1))
        eps = torch.cat(list(noise)) if len(noise) > 1 else noise[0]  # (R, C, H, W)
        up = torch.repeat_interleave(up, counts, 1)[:, :, None]  # (K, R, 1, H, W)
        self._track(up)
        xt = torch.addcmul(self.x[idx][None], up, eps[None])  # (K, R, C, H, W)
        feat = self.transform(self._stacked(xt, self.layout))
        f0 = torch.stack(self.f0)[:, idx]
        return idx, (feat - f0).pow(2).flatten(2).mean(2)

    def sensitivity(self, streams: NoiseStreams, probes: NoiseStreams, sigma_init: float,
                    grid: int, n: int, max_rows: int) -> torch.Tensor:
        """Per-cell sensitivities ``c_i = sum_{p in cell i} ||J[:, p]||^2`` (docs/method.md section 3).

        Hutchinson's estimate: for a Rademacher vector ``v`` over the feature,
        ``E ||J^T v||^2`` summed over a cell's pixels and channels is ``c_i``. ``J`` is the
        Jacobian of the (transformed) feature at the inputs perturbed with ``sigma_init``, the
        normaliser's noise, so the ReLU pattern is the one D0 sees. ``n`` probes per image;
        the noise comes from ``streams``, the probe vectors from ``probes`` (their signs).

        Returns
        -------
        Tensor (K, B, g, g)
        """
        K, (B, _, H, W) = self.checkpoints, self.x.shape
        dev = self.x.device
        ah, aw = _cell_matrix(grid, H, dev), _cell_matrix(grid, W, dev)
        c = torch.zeros(K, B, grid, grid, device=dev)
        for chunk in row_chunks(range(B), n, max_rows):
            noise, signs = streams.rows(chunk, n), probes.rows(chunk, n)
            imgs = [b for b, _, _ in chunk]
            counts = torch.tensor([s1 - s0 for _, s0, s1 in chunk], device=dev)
            idx = torch.repeat_interleave(torch.tensor(imgs, device=dev), counts)
            eps = torch.cat(noise) if len(noise) > 1 else noise[0]
            v = torch.cat(signs).sign() if len(signs) > 1 else signs[0].sign()
            for k in range(K):
                xt = (self.x[idx] + sigma_init * eps).requires_grad_(True)
                (g,) = torch.autograd.grad((self.feature(k, xt) * v).sum(), xt)
                energy = ah @ g.detach().pow(2).sum(1) @ aw.T  # (R, g, g)
                c[k].index_add_(0, idx, energy)
        return c / n

    def linear_rows(self, k: int, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The control variate of :meth:`rows`: ``mean_d (J_k v)_d^2`` per row, with ``v``
        ``(R, C, H, W)`` the row's perturbation ``up(sigma) * eps``, ``idx`` ``(R,)`` its
        image and ``J_k`` the Jacobian of the (transformed) feature at that clean image
        (one forward-mode product per row). Differentiable in sigma through ``v``; its
        expectation is :meth:`linear_expectation`'s.
        """
        x = self.x[idx].contiguous(memory_format=self.layout)
        with torch.no_grad():
            _, jv = torch.func.jvp(lambda z: self.feature(k, z),
                                   (x,), (v.detach().contiguous(memory_format=self.layout),))
        value = jv.pow(2).flatten(1).mean(1)
        if not v.requires_grad:
            return value
        # d value / d v = (2 / dim) J^T J v: one vector-Jacobian product at the clean image
        # (differentiating through the forward-mode product instead would need second
        # derivatives, which some activations lack). value + g.v - g.v.detach() has the value
        # and the gradient in sigma.
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.feature(k, xg), xg, jv * (2.0 / jv[0].numel()))
        gv = (g * v).flatten(1).sum(1)
        return value + gv - gv.detach()

    @torch.no_grad()
    def exact_sensitivity(self, grid: int, max_rows: int) -> torch.Tensor:
        """Per-cell sensitivities ``c_i = sum_{p in cell i} ||J[:, p]||^2`` of the
        (transformed) feature at the clean images, exactly: one vector-Jacobian product per
        feature dimension (``dim`` rows per image and checkpoint). ``(K, B, g, g)``.
        """
        K, (B, _, H, W) = self.checkpoints, self.x.shape
        dev = self.x.device
        ah, aw = _cell_matrix(grid, H, dev), _cell_matrix(grid, W, dev)
        dim = self.f0[0][0].numel()
        c = torch.zeros(K, B, grid, grid, device=dev)
        step = max(1, min(dim, max_rows))
        for k in range(K):
            for b in range(B):
                for d0 in range(0, dim, step):
                    d1 = min(dim, d0 + step)
                    xt = self.x[b:b + 1].expand(d1 - d0, -1, -1, -1).clone().requires_grad_(True)
                    with torch.enable_grad():
                        f = self.feature(k, xt).flatten(1)
                        basis = torch.zeros_like(f)
                        basis[torch.arange(d1 - d0), torch.arange(d0, d1)] = 1.0
                        (g,) = torch.autograd.grad(f, xt, basis)
                    c[k, b] += (ah @ g.pow(2).sum(1) @ aw.T).sum(0)
        return c

    @staticmethod
    def linear_expectation(sigma: torch.Tensor, c: torch.Tensor, dim: int) -> torch.Tensor:
        """``E mean_d (J v)_d^2 = sum_i sigma_i^2 c_i / dim`` (docs/method.md section 3.3),
        over the last two dimensions (the grid)."""
        return (sigma.pow(2) * c).sum((-2, -1)) / dim

    @torch.no_grad()
    def normaliser(self, streams: NoiseStreams, sigma_init: float, grid: int, n0: int,
                   max_rows: int) -> torch.Tensor:
        """``D0 = D(sigma_init * 1)`` per checkpoint and image, ``(K, B)``, from ``n0`` samples."""
        return self.normaliser_moments(streams, sigma_init, grid, n0, max_rows,
                                       range(self.x.shape[0]))[0] / n0

    def normaliser_moments(self, streams: NoiseStreams, sigma_init: float, grid: int, n0: int,
                           max_rows: int, images: Sequence[int],
                           units: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """The sum and the sum of squares of ``n0`` more per-sample distortions at
        ``sigma_init`` for ``images`` (the next ``n0`` draws of their streams), ``(K, B)``
        each (zero for the other images, and where ``units`` ``(K, B)``, if given, is
        False: those checkpoints skip the image)."""
        K, B = self.checkpoints, self.x.shape[0]
        s1 = torch.zeros(K, B, device=self.x.device)
        s2 = torch.zeros(K, B, device=self.x.device)
        sig0 = torch.full((grid, grid), sigma_init, device=self.x.device)
        for chunk in row_chunks(list(images), n0, max_rows):
            noise = streams.rows(chunk, n0)
            for k in range(K):
                keep = [i for i, r in enumerate(chunk) if units is None or units[k, r[0]]]
                if not keep:
                    continue
                idx, sq = self.rows(k, {b: sig0 for b, _, _ in chunk}, [chunk[i] for i in keep],
                                    [noise[i] for i in keep])
                s1[k].index_add_(0, idx, sq)
                s2[k].index_add_(0, idx, sq * sq)
        return s1, s2


def _stacked_forward(models: Sequence[nn.Module], feature: LayerFeature
                     ) -> Callable[[torch.Tensor, torch.memory_format], torch.Tensor]:
    """``(K, R, C, H, W) -> (K, R, *feature)``: the K checkpoints' truncated forwards as one
    ``vmap`` over ``functional_call`` with their stacked (gradient-free) weights."""
    if len(models) < 2 or len({type(m) for m in models}) != 1:
        raise ValueError("stacked checkpoints need two or more models of one class")
    params, buffers = torch.func.stack_module_state(list(models))
    state = {f"model.{k}": v.detach() for k, v in {**params, **buffers}.items()}
    truncated = feature.truncated

    def one(state_k: dict[str, torch.Tensor], xt: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(truncated, state_k, (xt,))

    batched = torch.func.vmap(one, in_dims=(0, 0))

    def forward(xt: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
        return batched(state, xt)

    return forward


def _cell_matrix(grid: int, size: int, device: torch.device) -> torch.Tensor:
    """``(grid, size)`` 0/1: pixel p belongs to cell i under nearest upsampling (the adjoint
    of :func:`~kdexplain.quantification.result.upsample_grid` along one axis)."""
    cell = (torch.arange(size, device=device) * grid) // size
    return (cell[None] == torch.arange(grid, device=device)[:, None]).float()
