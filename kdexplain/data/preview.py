"""Look at a dataset: counts and foreground shares (``data info``), a preview PNG (``data preview``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from kdexplain.data.grid import mask_to_grid
from kdexplain.data.transforms import denormalize
from kdexplain.utils import progress
from kdexplain.utils.render import save_png


def _spread(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (all of them if limit is None)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, limit)})


def dataset_summary(ds, limit: int | None = 1000, grid: int = 16,
                    show_progress: bool | None = None) -> dict:
    """Counts per class and how much of the images is foreground.

    Parameters
    ----------
    ds : dataset of this room
    limit : int or None
        Read at most this many images (spread evenly over the dataset) for the foreground
        shares; None reads all. Counts per class never read images.
    grid : int
        Grid of the cell-level share (fraction rule of :func:`mask_to_grid`).

    Returns
    -------
    dict
        ``images``, ``classes``, ``per_class`` {name: count}, ``unlabelled`` (label -1),
        ``measured`` (images read), ``foreground_pixels`` (mean share of mask pixels),
        ``foreground_cells`` (mean share of foreground cells on the grid),
        ``box_area`` (mean box area / image area), ``empty_masks``, ``skipped``
        (unreadable files, with paths).
    """
    labels = ds.labels()
    counts = Counter(labels)
    names = list(ds.class_names)
    out = {
        "dataset": getattr(ds, "name", type(ds).__name__),
        "split": getattr(ds, "split", None),
        "images": len(ds),
        "classes": len(names),
        "image_size": ds.image_size,
        "per_class": {name: counts.get(i, 0) for i, name in enumerate(names)},
        "unlabelled": counts.get(-1, 0),
    }
    idx = _spread(len(ds), limit)
    pix, cells, boxes, empty = [], [], [], 0
    for i in progress(idx, desc="reading", total=len(idx), enable=show_progress, unit="img"):
        item = ds[i]
        if "mask" not in item:
            continue
        m = item["mask"]
        pix.append(float(m.float().mean()))
        cells.append(float(mask_to_grid(m, grid).float().mean()))
        x0, y0, x1, y1 = item["box"].tolist()
        boxes.append(max(0.0, x1 - x0) * max(0.0, y1 - y0) / (m.shape[0] * m.shape[1]))
        empty += int(not bool(m.any()))
    out.update({
        "measured": len(pix),
        "foreground_pixels": float(np.mean(pix)) if pix else None,
        "foreground_cells": float(np.mean(cells)) if cells else None,
        "grid": grid,
        "box_area": float(np.mean(boxes)) if boxes else None,
        "empty_masks": empty,
        "skipped": [s._asdict() for s in getattr(ds, "skipped", [])],
    })
    return out


def format_summary(summary: dict) -> str:
    """The summary as readable text lines."""
    lines = [f"{summary['dataset']} ({summary['split']}): {summary['images']} images, "
             f"{summary['classes']} classes, {summary['image_size']} px"]
    width = max([len(k) for k in summary["per_class"]] + [5])
    for name, n in summary["per_class"].items():
        lines.append(f"  {name:<{width}}  {n}")
    if summary["unlabelled"]:
        lines.append(f"  {'(unlabelled)':<{width}}  {summary['unlabelled']}")
    if summary["measured"]:
        lines.append(f"foreground share over {summary['measured']} images: "
                     f"{summary['foreground_pixels']:.1%} of pixels, "
                     f"{summary['foreground_cells']:.1%} of {summary['grid']}x{summary['grid']} "
                     f"cells (fraction rule), boxes {summary['box_area']:.1%} of the image; "
                     f"{summary['empty_masks']} empty masks")
    else:
        lines.append("no foreground masks (no mask folder given)")
    if summary["skipped"]:
        lines.append(f"skipped {len(summary['skipped'])} unreadable files:")
        lines += [f"  {s['path']}: {s['reason']}" for s in summary["skipped"]]
    return "\n".join(lines)


def draw_preview(ds, out: str | Path, n: int = 16, grid: int = 16, cols: int | None = None,
                 start: int = 0, dpi: int = 110) -> Path:
    """Draw ``n`` items with their mask outline, box and the perturbation grid to a PNG.

    Yellow: the exact mask's outline. Cyan, dashed: the foreground cells of the grid
    (fraction rule of :func:`mask_to_grid`). Red: the object box. White lines: the grid.

    Parameters
    ----------
    ds : dataset of this room
    out : path
        The PNG to write (atomically).
    n : int
        Number of items (the first ``n`` from ``start``).
    grid : int
        Cells per side of the grid drawn; 0 draws no grid.
    cols : int or None
        Panels per row (default: about square).
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    from matplotlib.patches import Rectangle

    count = max(0, min(n, len(ds) - start))
    if count == 0:
        raise ValueError(f"nothing to preview: the dataset has {len(ds)} images, start={start}")
    cols = cols or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    fig = Figure(figsize=(2.1 * cols, 2.35 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    normalised = getattr(getattr(ds, "pipeline", None), "normalize", True)
    for k in range(count):
        item = ds[start + k]
        ax = axes.flat[k]
        img = denormalize(item["image"]) if normalised else item["image"].clamp(0, 1)
        h, w = img.shape[-2:]
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest",
                  extent=(0, w, h, 0))
        if grid:
            for t in np.arange(1, grid):
                ax.axhline(t * h / grid, color="white", lw=0.3, alpha=0.45)
                ax.axvline(t * w / grid, color="white", lw=0.3, alpha=0.45)
        if "mask" in item:
            m = item["mask"].float().numpy()
            yy, xx = np.mgrid[0:h, 0:w] + 0.5
            if m.any() and not m.all():
                ax.contour(xx, yy, m, levels=[0.5], colors="yellow", linewidths=1.0)
            if grid:
                cells = mask_to_grid(item["mask"], grid).float()
                up = torch.nn.functional.interpolate(cells[None, None], size=(h, w),
                                                     mode="nearest")[0, 0].numpy()
                if up.any() and not up.all():
                    ax.contour(xx, yy, up, levels=[0.5], colors="cyan", linewidths=0.8,
                               linestyles="dashed")
            x0, y0, x1, y1 = item["box"].tolist()
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=0.7))
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        label = int(item["label"])
        name = ds.class_names[label] if 0 <= label < len(ds.class_names) else "unlabelled"
        key = str(item["key"])
        ax.set_title(f"{name}\n{key if len(key) <= 28 else '...' + key[-25:]}", fontsize=6.5)
    fig.suptitle(f"{getattr(ds, 'name', '')} {getattr(ds, 'split', '') or ''}: yellow = mask, "
                 f"cyan = foreground cells ({grid}x{grid}), red = box", fontsize=8)
    fig.tight_layout()
    return save_png(fig, out, dpi=dpi)
