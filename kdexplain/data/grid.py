"""Foreground masks on the ``g x g`` grid of the perturbation module (docs/method.md sections 3 and 4).

The grid's cell ``i`` covers exactly the pixels that a nearest-neighbour upsampling of the
grid to the image (``F.interpolate(sigma, size=(H, W), mode="nearest")`` on a float32
sigma, as the quantify room does) maps to it. :func:`cell_index` returns that pixel -> cell
mapping, computed with the same ``F.interpolate`` call so the two can never disagree, also
when ``H % g != 0`` (where float32 rounding makes it differ from ``floor(p * g / H)``).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

MASK_RULES = ("fraction", "nearest")


@lru_cache(maxsize=64)
def _cell_index_cached(size: int, grid: int) -> torch.Tensor:
    # float32 and a 2-D call on purpose: PyTorch computes the nearest source index in the
    # tensor's float precision, and float32 (the dtype of sigma) differs from exact
    # arithmetic at some sizes (e.g. W=82, g=16: pixel 41 goes to cell 7, not 8).
    cells = torch.arange(grid, dtype=torch.float32).reshape(1, 1, grid, 1)
    up = F.interpolate(cells, size=(size, 1), mode="nearest")
    return up.reshape(size).round().long()


def cell_index(size: int, grid: int) -> torch.Tensor:
    """The grid cell of every pixel along one axis.

    Parameters
    ----------
    size : int
        Pixels along the axis (H or W).
    grid : int
        Cells along the axis (g).

    Returns
    -------
    LongTensor, shape (size,)
        ``out[p]`` is the cell (0..grid-1) that nearest-neighbour upsampling of a
        ``grid``-long vector to ``size`` assigns to pixel ``p``.
    """
    if size < 1 or grid < 1:
        raise ValueError(f"size and grid must be positive, got size={size}, grid={grid}")
    return _cell_index_cached(int(size), int(grid)).clone()


def mask_to_grid(mask: torch.Tensor, grid: int = 16, rule: str = "fraction",
                 threshold: float = 0.5) -> torch.Tensor:
    """Down-sample a foreground mask to the ``grid x grid`` cells of the perturbation grid.

    Parameters
    ----------
    mask : Tensor, shape (..., H, W)
        Foreground mask, bool or float in [0, 1] (any leading batch dimensions).
    grid : int
        Cells per side (g; the original uses 16).
    rule : {"fraction", "nearest"}
        ``"fraction"`` (default, the robust rule): a cell is foreground when the share of
        foreground among the pixels it covers (see :func:`cell_index`) is ``>= threshold``.
        A cell that covers no pixel (only possible when H or W < grid) takes the
        ``"nearest"`` value. ``"nearest"``: the original code's rule,
        ``F.interpolate(mask, size=grid, mode="nearest") > 0`` (one pixel per cell).
    threshold : float
        Foreground share needed by the ``"fraction"`` rule (docs/method.md: 0.5).

    Returns
    -------
    BoolTensor, shape (..., grid, grid)
        True where the cell is foreground.
    """
    if rule not in MASK_RULES:
        raise ValueError(f"unknown mask rule {rule!r}; choose one of {', '.join(MASK_RULES)}")
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if mask.dim() < 2:
        raise ValueError(f"mask must have shape (..., H, W), got shape {tuple(mask.shape)}")
    if grid < 1:
        raise ValueError(f"grid must be a positive number of cells, got {grid}")
    if mask.is_floating_point() and not torch.isfinite(mask).all():
        raise ValueError("mask holds NaN or infinite values; give a bool mask or shares in "
                         "[0, 1]")
    lead, (h, w) = mask.shape[:-2], mask.shape[-2:]
    m = mask.reshape(-1, 1, h, w).to(torch.float32)
    nearest = F.interpolate(m, size=(grid, grid), mode="nearest") > 0
    if rule == "nearest":
        return nearest.reshape(*lead, grid, grid)
    rows = F.one_hot(cell_index(h, grid), grid).to(torch.float32)  # (H, g)
    cols = F.one_hot(cell_index(w, grid), grid).to(torch.float32)  # (W, g)
    sums = torch.einsum("nhw,hi,wj->nij", m[:, 0], rows, cols)
    counts = torch.outer(rows.sum(0), cols.sum(0))  # pixels per cell, (g, g)
    frac = sums / counts.clamp(min=1)
    # a tiny tolerance so that a share of exactly `threshold` survives float rounding
    out = torch.where(counts > 0, frac >= threshold - 1e-6, nearest[:, 0])
    return out.reshape(*lead, grid, grid)


def center_mask(height: int, width: int, grid: int = 16, first: int = 2,
                last: int = 13) -> torch.Tensor:
    """The paper's foreground for ILSVRC images without masks: a central square of cells.

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    grid : int
        Cells per side (16 in the paper).
    first, last : int
        First and last foreground cell row/column, inclusive (2 and 13 of 16 in the paper).

    Returns
    -------
    BoolTensor, shape (height, width)
        True on the pixels of cells ``first..last`` in both directions, so that
        ``mask_to_grid(center_mask(...), grid)`` is exactly that square under both rules.
    """
    if not 0 <= first <= last < grid:
        raise ValueError(f"need 0 <= first <= last < grid, got first={first}, last={last}, "
                         f"grid={grid}")
    r = cell_index(height, grid)
    c = cell_index(width, grid)
    in_r = (r >= first) & (r <= last)
    in_c = (c >= first) & (c <= last)
    return in_r[:, None] & in_c[None, :]
