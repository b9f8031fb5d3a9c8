"""Analysis 5: how to weight the hard-label term against the soft targets (section 2).

Paper: "The second objective function is the cross entropy with the correct labels ...
We found that the best results were generally obtained by using a considerably lower
weight on the second objective function." With the soft term multiplied by T^2 (as in
kdexplain's ``distillation_loss``), the relative contribution of the two terms stays
roughly unchanged when T changes, so one weight can be compared across temperatures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.hinton import report as rp
from analyses.hinton.nets import count_errors
from analyses.hinton.workspace import Workspace
from kdexplain.utils.render import markdown_table

NAME = "weighting"
TITLE = "5. Weighting the hard labels against the soft targets"


def run(ws: Workspace) -> dict:
    """Grid of hard-label weight ``1 - a`` x temperature T, one student per cell and seed."""
    cfg, data = ws.cfg, ws.data
    y = data.y_test
    net = cfg.weighting_student
    grid = {}
    for seed in cfg.seeds:
        cells = []
        for w in cfg.weighting_hard_weights:
            row = []
            for t in cfg.weighting_temperatures:
                if w >= 1.0:  # labels only: T plays no part, one run serves the whole row
                    out = ws.student(seed, net)
                else:
                    out = ws.student(seed, net, temperature=t, soft_weight=1.0 - w)
                row.append(count_errors(out["test"], y))
            cells.append(row)
        grid[str(seed)] = cells
    result = {"name": NAME, "title": TITLE, "n_test": int(len(y)), "per_seed": grid,
              "hard_weights": list(cfg.weighting_hard_weights),
              "temperatures": list(cfg.weighting_temperatures), "student_hidden": net.hidden,
              "teacher_errors": {str(s): count_errors(ws.teacher(s)["test"], y)
                                 for s in cfg.seeds}}
    result["headline"] = headline(result)
    return result


def _cube(result: dict) -> np.ndarray:
    """Error rates, shape (seeds, hard weights, temperatures)."""
    return np.array([result["per_seed"][s] for s in result["per_seed"]], dtype=float) / \
        result["n_test"]


def best_cell(result: dict) -> tuple[int, int]:
    """(hard-weight index, temperature index) of the lowest mean error rate."""
    mean = _cube(result).mean(0)
    i, j = np.unravel_index(int(np.argmin(mean)), mean.shape)
    return int(i), int(j)


def headline(result: dict) -> list[str]:
    """The one-line findings for the index (recomputed whenever the page is rendered)."""
    cube = _cube(result)
    i, j = best_cell(result)
    ws, ts = result["hard_weights"], result["temperatures"]
    lab = [k for k, w in enumerate(ws) if w >= 1.0]
    tail = (f"; labels only: {rp.fmt_ms(cube[:, lab[0], 0], 2, 100, '%')}" if lab else "")
    return [f"Lowest mean test error of the 2x{result['student_hidden']} student at hard "
            f"weight {ws[i]:g}, T = {ts[j]:g}: {rp.fmt_ms(cube[:, i, j], 2, 100, '%')}{tail} "
            "(paper: a considerably lower weight on the hard term works best)."]


def render(result: dict, out_dir: str | Path) -> list[Path]:
    """Write ``weighting.md`` and ``weighting_grid.png`` from a :func:`run` result."""
    out_dir = Path(out_dir)
    cube = _cube(result)
    mean = cube.mean(0) * 100
    ws, ts = result["hard_weights"], result["temperatures"]
    i, j = best_cell(result)

    fig, ax = rp.figure(11.5, 4, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    im = ax[0].imshow(mean, cmap="viridis_r", aspect="auto")
    for a in range(len(ws)):
        for b in range(len(ts)):
            ax[0].text(b, a, f"{mean[a, b]:.2f}", ha="center", va="center", fontsize=8,
                       color="white" if mean[a, b] > mean.mean() else "black",
                       fontweight="bold" if (a, b) == (i, j) else "normal")
    ax[0].set(xticks=range(len(ts)), xticklabels=[f"{t:g}" for t in ts],
              yticks=range(len(ws)), yticklabels=[f"{w:g}" for w in ws],
              xlabel="temperature T", ylabel="hard-label weight 1 - a",
              title="mean test error (%)")
    fig.colorbar(im, ax=ax[0], shrink=0.8)
    soft_ws = [k for k, w in enumerate(ws) if w < 1.0]
    for b, t in enumerate(ts):
        rp.errorbar_line(ax[1], [ws[k] for k in soft_ws], 100 * cube[:, soft_ws, b], f"T = {t:g}")
    lab = [k for k, w in enumerate(ws) if w >= 1.0]
    if lab:
        ax[1].axhline(100 * cube[:, lab[0], 0].mean(), color="grey", ls="--", lw=1,
                      label="labels only (weight 1)")
    ax[1].set(xlabel="hard-label weight 1 - a", ylabel="test error (%)",
              title="error vs weight (mean ± std over seeds)")
    ax[1].legend(fontsize=8)
    paths = [rp.save_figure(fig, out_dir / "weighting_grid.png")]

    rows = []
    for a, w in enumerate(ws):
        if w >= 1.0:
            rows.append([f"{w:g} (labels only)"] + [rp.fmt_ms(cube[:, a, 0], 2, 100, "%")]
                        + ["same"] * (len(ts) - 1))
        else:
            rows.append([f"{w:g}"] + [rp.fmt_ms(cube[:, a, b], 2, 100, "%")
                                      for b in range(len(ts))])
    # cells whose mean is within one (mean) seed std of the best: not distinguishable here
    std = cube.std(0, ddof=1).mean() * 100 if cube.shape[0] > 1 else 0.0
    close = [(ws[a], ts[b]) for a in range(len(ws)) for b in range(len(ts))
             if mean[a, b] - mean[i, j] <= std and not (ws[a] >= 1.0 and b > 0)]
    teacher = np.array(list(result["teacher_errors"].values()), dtype=float) / result["n_test"]
    low = [mean[a].min() for a in soft_ws if ws[a] <= 0.3]
    high = [mean[a].min() for a in soft_ws if ws[a] >= 0.5]
    low_best = min(low) if low else float("nan")
    high_best = min(high) if high else float("nan")
    paper = """
The student's objective is a weighted average of the soft-target
cross-entropy (at temperature T, multiplied by T^2) and the hard-label cross-entropy (at
T = 1); "the best results were generally obtained by using a considerably lower weight on
the second objective function."
"""
    setup = f"""
Student 2x{result['student_hidden']} distilled from the teacher of analysis 3
on the whole training split, loss `a * T^2 * KL(q_T(teacher) || q_T(student)) +
(1 - a) * CE(labels)` (kdexplain's `distillation_loss`), for every hard-label weight
`1 - a` and temperature below; weight 1 is plain training on labels. Teacher test error
{rp.fmt_ms(teacher, 2, 100, '%')}.
"""
    body = f"""
Test error (mean ± std over seeds):

{markdown_table(pd.DataFrame(rows, columns=["hard weight 1 - a"] + [f"T = {t:g}" for t in ts]))}

![weighting grid](weighting_grid.png)

**Reading.** The lowest mean error is at hard weight {ws[i]:g}, T = {ts[j]:g}
({mean[i, j]:.2f}%). Cells within one typical seed std ({std:.2f} points) of it:
{', '.join(f'(1 - a = {w:g}, T = {t:g})' for w, t in close)}. {_verdict(low_best, high_best, std)}.
"""
    return rp.render_page(out_dir, result, where="section 2", paper=paper, setup=setup,
                          body=body, figures=paths)


def _verdict(low: float, high: float, std: float) -> str:
    """Compare the best low-hard-weight (<= 0.3) and high-hard-weight (0.5-0.9) cells."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "The grid lacks low (<= 0.3) or high (>= 0.5) hard weights to compare"
    text = (f"Best over T with a low hard weight (<= 0.3): {low:.2f}%; with a high one "
            f"(>= 0.5, below 1): {high:.2f}%: ")
    if abs(low - high) <= std:
        return text + ("a difference within one seed std, so low and high weights are not "
                       "distinguishable at this precision")
    if low < high:
        return text + "lower hard weights do better, as in the paper"
    return text + "higher hard weights do better here, unlike the paper"
