"""Report figures (matplotlib, Agg, PNG), each written atomically.

- :func:`plot_entropy_heatmaps`: entropy grids of T, S and B side by side for a few images,
  on one shared colour scale, the foreground outlined and the concept cells marked.
- :func:`plot_concepts_vs_distance`: ``N_fg`` and ``N_bg`` against the weight distance over
  training, mean and a band of one standard deviation over images, for S and B.
- :func:`plot_peak_distance`: the distribution over images of the peak distance ``d(m^)``
  for S and B.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state, no GUI backend).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from kdexplain.concepts import ROLE_LABELS, ConceptAnalysis, RunEntropies, ThresholdCurve
from kdexplain.report.tables import METRIC_HEADERS
from kdexplain.utils.render import entropy_colorbar, format_number, save_png, show_entropy
from kdexplain.vocabulary import COMPARED_ROLES, ROLES

__all__ = [
    "ROLE_COLOURS",
    "outline_foreground",
    "plot_concepts_vs_distance",
    "plot_entropy_heatmaps",
    "plot_peak_distance",
    "plot_threshold_curve",
    "upsample_nearest",
]

ROLE_COLOURS = {"teacher": "#7f7f7f", "student": "#1f77b4", "baseline": "#d62728"}
_FOREGROUND_COLOUR = "#00e5ff"


def upsample_nearest(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a (g, g) grid to (H, W): pixel p -> cell floor(p g / H).

    The same cell-to-pixel map as the perturbation grid (docs/method.md section 3).
    """
    grid = np.asarray(grid)
    h, w = size
    rows = (np.arange(h) * grid.shape[0]) // h
    cols = (np.arange(w) * grid.shape[1]) // w
    return grid[rows][:, cols]


def outline_foreground(ax, fg_px: np.ndarray, linewidth: float = 1.0) -> None:
    """Outline the foreground (H, W) in pixel coordinates, closed along the image border."""
    if not fg_px.any():
        return
    h, w = fg_px.shape
    ax.contour(np.arange(-1, w + 1), np.arange(-1, h + 1), np.pad(fg_px, 1), levels=[0.5],
               colors=_FOREGROUND_COLOUR, linewidths=linewidth)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _image_hwc(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return np.clip(img, 0.0, 1.0)


def _validate_images(images: np.ndarray, n: int) -> np.ndarray:
    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images,
                        dtype=np.float64)
    if images.ndim != 4 or images.shape[0] != n or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be a float array (N, 3, H, W) in [0, 1] with N = {n} "
                         f"(the run's images, in the order of its image_keys); got shape "
                         f"{images.shape}")
    return images


def _heatmap_grids(analysis: ConceptAnalysis, seed: int, keys: list[str] | None,
                   n_images: int
                   ) -> tuple[RunEntropies, list[str], list[str], dict, dict]:
    """(run, roles shown, image keys, role -> grids (n, g, g), role -> concepts) of the
    heatmap figure at each model's count checkpoint."""
    if seed not in analysis.seeds:
        raise ValueError(f"seed {seed} is not one of the analysed runs {analysis.seeds}")
    run = analysis.runs[analysis.seeds.index(seed)]
    models = analysis.models[seed]
    # a shared teacher is shown when it was analysed on this run's images (same seed)
    roles = [r for r in ROLES if r in models
             and (src := analysis.run_of(seed, r)) is not None
             and src.image_keys == run.image_keys]
    common = [k for k in run.image_keys if all(k in analysis.used_keys[seed][r] for r in roles)]
    if keys is None:
        keys = common[:n_images]
    missing = [k for k in keys if k not in common]
    if missing:
        raise ValueError(f"images {missing} are not used by every model; used ones are e.g. "
                         f"{common[:5]}")
    if not keys:
        raise ValueError("no image is used by every model; nothing to show")
    pos = {k: i for i, k in enumerate(run.image_keys)}
    grids, concepts = {}, {}
    for role in roles:
        mc = models[role]
        used = analysis.used_keys[seed][role]
        sub = [used.index(k) for k in keys]
        grids[role] = analysis.run_of(seed, role).entropy[role][mc.count_index][
            [pos[k] for k in keys]]
        concepts[role] = mc.concepts[mc.count_index][sub]
    return run, roles, keys, grids, concepts


def plot_entropy_heatmaps(analysis: ConceptAnalysis, path: str | Path, *,
                          images: np.ndarray | None = None, n_images: int = 4,
                          keys: list[str] | None = None, seed: int | None = None,
                          title: str = "") -> Path:
    """Entropy grids of every model side by side, one shared colour scale.

    Each row is an image (the image itself first, when ``images`` is given), each further
    column a model (T, S, B) at the checkpoint of hypothesis 1's counts. The foreground is
    outlined in cyan; concept cells (``H_bar - H_i > b``) carry a white dot. The colour limits
    are the 2nd and 98th percentiles of all the grids shown, so colours compare across models.

    Parameters
    ----------
    analysis : ConceptAnalysis
    path : path of the PNG
    images : array (N, 3, H, W), optional
        The run's images in [0, 1], in the order of ``runs[i].image_keys``.
    n_images : int
        How many images to show (the first used ones), when ``keys`` is not given.
    keys : list of str, optional
        Which images to show.
    seed : int, optional
        Which run to show (default: the first).
    """
    seed = analysis.seeds[0] if seed is None else seed
    run, roles, keys, grids, concepts = _heatmap_grids(analysis, seed, keys, n_images)
    if images is not None:
        images = _validate_images(images, run.n_images)
    models = analysis.models[seed]
    pos = {k: i for i, k in enumerate(run.image_keys)}
    shown = np.concatenate([g.ravel() for g in grids.values()])
    vmin, vmax = np.percentile(shown, [2, 98])
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    n_cols = len(roles) + (images is not None)
    fig = Figure(figsize=(2.2 * n_cols + 0.9, 2.2 * len(keys) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(keys), n_cols, squeeze=False))
    mappable = None
    for r, key in enumerate(keys):
        i = pos[key]
        fg = run.foreground[i]
        size = (images.shape[2], images.shape[3]) if images is not None else (
            fg.shape[0] * 16, fg.shape[1] * 16)
        fg_px = upsample_nearest(fg.astype(float), size).astype(float)
        extent = (-0.5, size[1] - 0.5, size[0] - 0.5, -0.5)
        c = 0
        if images is not None:
            ax = axes[r, 0]
            ax.imshow(_image_hwc(images[i]), cmap="gray", vmin=0, vmax=1)
            outline_foreground(ax, fg_px, 1.0)
            ax.set_ylabel(key, fontsize=8)
            if r == 0:
                ax.set_title("image", fontsize=9)
            c = 1
        g = fg.shape[0]
        centres = (np.arange(g) + 0.5) * size[0] / g - 0.5, (np.arange(g) + 0.5) * size[1] / g - 0.5
        for role in roles:
            ax = axes[r, c]
            mappable = show_entropy(ax, grids[role][keys.index(key)], vmin, vmax,
                                    extent=extent)
            outline_foreground(ax, fg_px, 1.2)
            yy, xx = np.nonzero(concepts[role][keys.index(key)])
            if yy.size:
                ax.scatter(centres[1][xx], centres[0][yy], s=7, c="white", edgecolors="black",
                           linewidths=0.4)
            if r == 0:
                ax.set_title(f"{ROLE_LABELS[role]} ({role}), epoch {models[role].count_epoch}",
                             fontsize=9)
            if c == 0:
                ax.set_ylabel(key, fontsize=8)
            c += 1
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    entropy_colorbar(fig, mappable, ax=axes, shrink=0.8, pad=0.01)
    fig.suptitle(title or "Entropy per cell (shared colour scale); cyan: foreground; "
                 "dots: concept cells", fontsize=9)
    return save_png(fig, path)


def _band(analysis: ConceptAnalysis, role: str, seed: int, what: str
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mc = analysis.models[seed][role]
    counts = (mc.n_fg if what == "N_fg" else mc.n_bg).astype(np.float64)  # (M, N)
    mean = counts.mean(axis=1)
    sd = counts.std(axis=1, ddof=1) if counts.shape[1] > 1 else np.zeros_like(mean)
    return mc.distance, mean, sd


def plot_concepts_vs_distance(analysis: ConceptAnalysis, path: str | Path, *,
                              roles: tuple[str, ...] = COMPARED_ROLES,
                              title: str = "") -> Path:
    """``N_fg`` and ``N_bg`` against the weight distance ``d`` over training.

    One line per model and seed: the mean over the used images at each checkpoint, with a
    band of one standard deviation over images.
    """
    roles = tuple(r for r in roles if r in analysis.roles)
    if not roles:
        raise ValueError("none of the models to plot was analysed")
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    dist_name = ("per-epoch weight distance" if analysis.settings.distance == "epoch"
                 else "weight distance d (path length / ||W_0||)")
    for ax, what in ((axes[0], "N_fg"), (axes[1], "N_bg")):
        label = METRIC_HEADERS[what]
        for role in roles:
            for k, seed in enumerate(analysis.seeds):
                if role not in analysis.models[seed]:
                    continue
                x, mean, sd = _band(analysis, role, seed, what)
                colour = ROLE_COLOURS[role]
                tag = f"{ROLE_LABELS[role]} ({role})"
                if len(analysis.seeds) > 1:
                    tag += " per seed"
                ax.plot(x, mean, marker="o", ms=3, color=colour, lw=1.5,
                        label=tag if k == 0 else None)
                ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
        ax.set_xlabel(dist_name)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("concepts per image (mean ± sd over images)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "Concepts over training against the weight distance", fontsize=10)
    return save_png(fig, path)


def plot_peak_distance(analysis: ConceptAnalysis, path: str | Path, *,
                       roles: tuple[str, ...] = COMPARED_ROLES,
                       title: str = "") -> Path:
    """Distribution over images of ``d(m^)``, the weight distance at the ``N_fg`` peak.

    A box plot per model with every image as a jittered dot (all seeds pooled) and the mean
    as a diamond; ``D_mean`` ("mean") and ``D_std`` ("spread") in the axis labels.
    """
    roles = tuple(r for r in roles if r in analysis.roles)
    if not roles:
        raise ValueError("none of the models to plot was analysed")
    df = analysis.per_image
    fig = Figure(figsize=(4.8, 4.0), layout="constrained")
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    data, labels = [], []
    for k, role in enumerate(roles):
        d = df.loc[df["role"] == role, "peak_distance"].to_numpy(dtype=np.float64)
        d = d[np.isfinite(d)]
        data.append(d)
        summ = analysis.summary.set_index(["role", "metric"])
        mean, std = summ.loc[(role, "D_mean"), "value"], summ.loc[(role, "D_std"), "value"]
        labels.append(f"{ROLE_LABELS[role]} ({role})\nmean {format_number(mean)}\n"
                      f"spread {format_number(std)}")
        ax.scatter(k + rng.uniform(-0.18, 0.18, d.size), d, s=12, alpha=0.6,
                   color=ROLE_COLOURS[role], edgecolors="none")
        if d.size:
            ax.scatter([k], [d.mean()], marker="D", s=40, color="black", zorder=3)
    ax.boxplot([x if x.size else [np.nan] for x in data], positions=range(len(roles)),
               widths=0.5, showfliers=False, medianprops={"color": "black"})
    ax.set_xticks(range(len(roles)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(roles) - 0.4)
    # two lines: on one, the label is taller than the axes and is cut at the figure's edge
    ax.set_ylabel("weight distance where the\nforeground concepts peak, d(m^)")
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or "Where each image's foreground concepts peak (one dot per image)",
                 fontsize=9)
    return save_png(fig, path)


def plot_threshold_curve(curve: ThresholdCurve, path: str | Path) -> Path:
    """S - B of every verdict-carrying metric against the concept threshold b, with its
    interval; the analysis' own b is a dashed line and each point is coloured by the
    metric's verdict there."""
    t = curve.tests
    metrics = list(dict.fromkeys(t["metric"]))
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = Figure(figsize=(3.4 * cols, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    colour = {"holds": "tab:green", "does not hold": "tab:red"}
    for ax, metric in zip(axes, metrics, strict=False):
        sub = t[t["metric"] == metric].sort_values("b")
        b = sub["b"].to_numpy(dtype=np.float64)
        ax.fill_between(b, sub["diff_ci_low"], sub["diff_ci_high"], color="0.85", lw=0)
        ax.plot(b, sub["diff"], color="0.3", lw=1)
        ax.scatter(b, sub["diff"], s=18, zorder=3,
                   c=[colour.get(v, "0.55") for v in sub["verdict"]])
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(curve.own_threshold, color="black", lw=0.6, ls="--")
        ax.set_title(f"{METRIC_HEADERS.get(metric, metric)}, expected "
                     f"{sub['direction'].iloc[0]}", fontsize=8)
        ax.set_xlabel("concept threshold b (nats)", fontsize=8)
        ax.set_ylabel("S − B", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("S − B over the concept threshold (band: interval; green holds, red does "
                 "not hold, grey inconclusive)", fontsize=9)
    return save_png(fig, path)
