"""Entropy heatmaps over images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def plot_entropy_overlay(image: torch.Tensor, entropy: torch.Tensor, path: str | Path, *,
                         foreground: torch.Tensor | None = None, title: str = "",
                         vmin: float | None = None, vmax: float | None = None) -> Path:
    """Save a PNG: the image, and its entropy grid over it (low entropy = used information).

    Parameters
    ----------
    image : Tensor (3, H, W)
        In [0, 1] (denormalised).
    entropy : Tensor (g, g)
        Nats per dimension.
    foreground : Tensor (H, W), optional
        Outlined on both panels.
    vmin, vmax : float, optional
        Colour scale (share it between images you compare).
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    from kdexplain.quantification.engine import upsample_grid
    from kdexplain.utils.render import entropy_colorbar, save_png, show_entropy

    img = image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    H, W = img.shape[:2]
    ent = upsample_grid(entropy.detach().cpu().float(), (H, W)).numpy()
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    axes[0].imshow(img)
    axes[0].set_title("image")
    axes[1].imshow(img)
    im = show_entropy(axes[1], ent, vmin, vmax, alpha=0.75)
    axes[1].set_title("entropy per cell")
    if foreground is not None:
        fg = foreground.detach().cpu().float().numpy()
        for ax in axes:
            ax.contour(fg, levels=[0.5], colors="cyan", linewidths=1.0)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    # the label in two lines: on one it is taller than the panel and is cut at the edge
    entropy_colorbar(fig, im, "entropy per cell (nats)\nbright = low = information used",
                     ax=axes[1], fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_png(fig, path, dpi=110)


def shared_scale(entropies: list[torch.Tensor] | torch.Tensor) -> tuple[float, float]:
    """Robust common colour limits (2nd and 98th percentile) of several entropy grids."""
    if isinstance(entropies, torch.Tensor):
        entropies = [entropies]
    vals = np.concatenate([e.detach().cpu().float().numpy().ravel() for e in entropies])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    return float(np.percentile(vals, 2)), float(np.percentile(vals, 98))
