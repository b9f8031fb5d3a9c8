"""The attribution methods compared, each a map per image with its cost.

Every method returns one non-negative value per pixel (``(B, H, W)``): the perturbation
entropy as its ``normalized`` map, Captum's methods as the magnitude of their attribution
summed over the colour channels (the ``abs=True`` reading Quantus applies to signed maps).
Captum's methods explain the logit of the image's label; so does ``pe_logit``; ``pe_layer``
explains the analysed layer's whole feature and takes no class.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from captum.attr import FeatureAblation, IntegratedGradients, Occlusion, Saliency
from torch import nn

from kdexplain import PerturbationEntropy


@dataclass(frozen=True)
class MethodSettings:
    """How hard each method works (the page records these).

    Attributes
    ----------
    grid : int
        Cells per side of the perturbation-entropy grid.
    ablation_grid : int
        Cells per side of FeatureAblation's feature mask (one forward pass per cell).
    samples, steps : int or None
        Noise samples per step and the most steps of :func:`kdexplain.quantify`
        (None: the default preset's).
    occlusion_window, occlusion_stride : int
        Side and stride of Occlusion's square patch (pixels; all channels at once).
    ig_steps : int
        Riemann steps of IntegratedGradients (baseline: zeros, the data set's mean colour).
    seed : int
        Seed of the noise streams.
    """

    grid: int = 16
    ablation_grid: int = 8
    samples: int | None = None
    steps: int | None = None
    occlusion_window: int = 8
    occlusion_stride: int = 4
    ig_steps: int = 32
    seed: int = 0


@dataclass
class MapResult:
    """Maps of one method on one network's images, and what they cost.

    Attributes
    ----------
    maps : Tensor (B, H, W)
        Non-negative, one value per pixel.
    forward_rows : int
        Images passed through the network (whole or up to the layer), all batches together.
    seconds : float
        Wall time of the method's call.
    """

    maps: torch.Tensor
    forward_rows: int
    seconds: float


def grid_mask(size: int, grid: int) -> torch.Tensor:
    """FeatureAblation's feature mask: the perturbation grid's cells, (1, 1, size, size)."""
    cell = torch.arange(grid * grid).reshape(grid, grid)
    up = torch.nn.functional.interpolate(cell[None, None].float(), size=(size, size),
                                         mode="nearest")
    return up.long()


def _pe(layer_of: Callable[[nn.Module], str | None], use_target: bool):
    def run(model, x, y, keys, s: MethodSettings):
        pe = PerturbationEntropy(model, layer_of(model), grid=s.grid, samples=s.samples,
                                 steps=s.steps, seed=s.seed, image_keys=keys)
        a = pe.attribute(x, target=y if use_target else None, map="normalized")
        return a[:, 0]
    return run


def _occlusion(model, x, y, keys, s: MethodSettings):
    w, st = s.occlusion_window, s.occlusion_stride
    a = Occlusion(model).attribute(x, target=y, sliding_window_shapes=(x.shape[1], w, w),
                                   strides=(x.shape[1], st, st), baselines=0.0,
                                   perturbations_per_eval=8)
    return a.abs().sum(1)


def _feature_ablation(model, x, y, keys, s: MethodSettings):
    mask = grid_mask(x.shape[-1], s.ablation_grid).expand(x.shape[0], x.shape[1], -1, -1)
    a = FeatureAblation(model).attribute(x, target=y, baselines=0.0, feature_mask=mask,
                                         perturbations_per_eval=8)
    return a.abs().sum(1)


def _saliency(model, x, y, keys, s: MethodSettings):
    return Saliency(model).attribute(x.clone().requires_grad_(True), target=y,
                                     abs=True).sum(1)


def _integrated_gradients(model, x, y, keys, s: MethodSettings):
    a = IntegratedGradients(model).attribute(x, target=y, baselines=0.0, n_steps=s.ig_steps,
                                             internal_batch_size=64)
    return a.abs().sum(1)


def methods(layer: str) -> dict[str, Callable]:
    """The compared methods by name; ``layer`` is the perturbation entropy's layer."""
    return {
        "PE layer": _pe(lambda m: layer, use_target=False),
        "PE logit": _pe(lambda m: None, use_target=True),
        "Occlusion": _occlusion,
        "FeatureAblation": _feature_ablation,
        "Saliency": _saliency,
        "IntegratedGradients": _integrated_gradients,
    }


def run_method(fn: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               keys: list[str], settings: MethodSettings) -> MapResult:
    """Call one method, counting the rows that enter ``model`` and the seconds it takes."""
    rows = [0]

    def count(module, args):
        rows[0] += int(args[0].shape[0])

    model.eval()
    handle = model.register_forward_pre_hook(count)
    try:
        t0 = time.perf_counter()
        maps = fn(model, x, y, keys, settings)
        seconds = time.perf_counter() - t0
    finally:
        handle.remove()
    return MapResult(maps.detach().float().cpu(), rows[0], seconds)
