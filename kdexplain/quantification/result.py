"""What a quantification returns, and the grid helpers (entropy, upsampling, image keys)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["ENTROPY_OFFSET", "QuantifyResult", "image_key", "sigma_to_entropy", "upsample_grid"]

#: Entropy of N(0, 1) per dimension: ``H = log sigma + ENTROPY_OFFSET``.
ENTROPY_OFFSET = 0.5 * math.log(2 * math.pi * math.e)


def sigma_to_entropy(sigma: torch.Tensor) -> torch.Tensor:
    """``H = log sigma + 0.5 log(2 pi e)`` (nats per dimension), elementwise."""
    return torch.log(sigma) + ENTROPY_OFFSET


@dataclass
class QuantifyResult:
    """What :func:`quantify` returns.

    Shapes use ``K`` checkpoints (absent when a single model was given), ``B`` images and
    a ``grid x grid`` sigma.

    Attributes
    ----------
    sigma : Tensor ([K,] B, grid, grid)
        The learnt noise scale per cell (in the model's input units).
    entropy : Tensor ([K,] B, grid, grid)
        ``H_i = log sigma_i + 0.5 log(2 pi e)``, nats per dimension.
    d0 : Tensor ([K,] B)
        The normaliser ``D(sigma_init)``.
    no_signal : BoolTensor ([K,] B)
        ``d0 == 0``: the layer's feature does not react to noise at all for that image (e.g.
        every unit is dead after the ReLU). Such images are not optimised; their sigma stays
        at ``sigma_init`` and they must be excluded from statistics.
    loss_trace, distortion_trace, entropy_trace : Tensor (steps, [K,] B)
        Objective ``D/D0 - lambda_H mean H``, ``D/D0`` and mean entropy per step, at the
        iterate before the step; NaN once a unit has stopped.
    steps_run : LongTensor ([K,] B)
        Steps each unit ran.
    selected_step : LongTensor ([K,] B)
        The step whose iterate was kept (reference: closest to the target entropy).
    entropy_weight : Tensor ([K,] B)
        ``lambda_H`` at the end (the reference rule may have raised it).
    image_keys : list of str
        The key of each image (its noise stream).
    layer : str
        The resolved module path.
    settings : dict
        The resolved :class:`QuantifySettings`.
    log_sigma_se : Tensor ([K,] B, grid, grid) or None
        The estimated standard error of each cell's log sigma from the sampling noise of
        the kept iterate: for ``default``, around the optimum (``sigma`` lies within about
        ``0.67 * se`` of it in half of the cells); for ``paper`` and ``reference``, around
        the noise-free descent path (its sampled gradients' variance carried along the path,
        docs/method.md section 3.4). NaN where the preset does not estimate it (``adam``)
        and for ``no_signal`` images; None in results saved before 0.3.
    """

    sigma: torch.Tensor
    entropy: torch.Tensor
    d0: torch.Tensor
    no_signal: torch.Tensor
    loss_trace: torch.Tensor
    distortion_trace: torch.Tensor
    entropy_trace: torch.Tensor
    steps_run: torch.Tensor
    selected_step: torch.Tensor
    entropy_weight: torch.Tensor
    image_keys: list[str]
    layer: str
    settings: dict = field(default_factory=dict)
    log_sigma_se: torch.Tensor | None = None

    @property
    def precision(self) -> torch.Tensor | None:
        """Median over cells of :attr:`log_sigma_se`, ``([K,] B)``: the precision of each
        unit's log sigma (NaN where not estimated)."""
        if self.log_sigma_se is None:
            return None
        return self.log_sigma_se.flatten(-2).nanmedian(-1).values

    def squeeze_checkpoints(self) -> QuantifyResult:
        """The result of a single-model call: drop the checkpoint dimension."""
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, torch.Tensor):
                out[k] = v.squeeze(1) if k.endswith("_trace") else v.squeeze(0)
            else:
                out[k] = v
        return QuantifyResult(**out)


def image_key(image: torch.Tensor) -> str:
    """A stable key of an image's pixels (its default noise-stream name)."""
    arr = image.detach().to("cpu", torch.float32).contiguous().numpy()
    h = hashlib.blake2b(arr.tobytes(), digest_size=10)
    h.update(str(arr.shape).encode())
    return h.hexdigest()


def upsample_grid(sigma: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour upsampling of (..., g, g) grids to (..., H, W) (docs/method.md section 3)."""
    lead = sigma.shape[:-2]
    up = F.interpolate(sigma.reshape(-1, 1, *sigma.shape[-2:]), size=size, mode="nearest")
    return up.reshape(*lead, *size)
