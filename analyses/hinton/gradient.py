"""Analysis 2: the high-temperature limit of the soft-target gradient (Hinton et al., 2.1).

For one example, the soft-target cross-entropy C at temperature T has gradient
``dC/dz_i = (1/T)(q_i - p_i)`` (z student logits, v teacher logits, q and p their
temperature softmaxes). If T is large relative to the logits **and** the logits are
zero-meaned per example, ``dC/dz_i ~ (z_i - v_i) / (N T^2)``: distillation becomes
matching logits with a squared error. The loss used here is kdexplain's
:func:`~kdexplain.train.losses.soft_target_loss`, which multiplies by ``T^2``, so its
gradient tends to ``(z - v) / N``: the gradient of
:func:`~kdexplain.train.losses.logit_l2_loss`. Both gradients are taken by autograd on the
library's losses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analyses.hinton import report as rp
from analyses.hinton.workspace import Workspace
from kdexplain.train.losses import logit_l2_loss, soft_target_loss
from kdexplain.utils.render import markdown_table

NAME = "gradient"
TITLE = "2. The high-temperature limit: soft targets become logit regression"


def soft_target_grad(z: torch.Tensor, v: torch.Tensor, temperature: float,
                     scale_t2: bool = True) -> torch.Tensor:
    """Per-example gradient of the soft-target loss with respect to the student logits.

    Parameters
    ----------
    z, v : Tensor (B, N)
        Student and teacher logits.
    temperature : float
    scale_t2 : bool
        Include the ``T^2`` factor (kdexplain's default and the paper's advice).

    Returns
    -------
    Tensor (B, N), float64
        ``d(T^2 KL(q_T(v) || q_T(z))) / dz`` for each example, i.e. ``T (q - p)``
        (``(q - p) / T`` without the factor); the loss' batch mean is undone.
    """
    z = z.detach().double().clone().requires_grad_(True)
    loss = soft_target_loss(z, v.detach().double(), temperature, scale_t2=scale_t2)
    (g,) = torch.autograd.grad(loss, z)
    return g * z.shape[0]


def logit_regression_grad(z: torch.Tensor, v: torch.Tensor, zero_mean: bool) -> torch.Tensor:
    """Per-example gradient of :func:`logit_l2_loss`: ``(z - v) / N`` (centred if ``zero_mean``).

    Parameters
    ----------
    z, v : Tensor (B, N)
    zero_mean : bool
        Centre both logit vectors per example first.

    Returns
    -------
    Tensor (B, N), float64
    """
    z = z.detach().double().clone().requires_grad_(True)
    loss = logit_l2_loss(z, v.detach().double(), zero_mean=zero_mean)
    (g,) = torch.autograd.grad(loss, z)
    return g * z.shape[0]


def relative_difference(z: torch.Tensor, v: torch.Tensor, temperature: float,
                        zero_mean: bool) -> float:
    """``||g_T - (z - v)/N||_F / ||(z - v)/N||_F`` over a batch.

    ``g_T`` is the ``T^2``-scaled soft-target gradient. With ``zero_mean`` the logits are
    centred per example before both gradients are taken (the soft-target gradient does
    not change: softmax ignores a shift), and the difference vanishes like ``1/T``;
    without, ``(z - v)/N`` keeps the difference of the two logit means, which no softmax
    gradient can follow, so the difference levels off at a floor.

    Parameters
    ----------
    z, v : Tensor (B, N)
    temperature : float
    zero_mean : bool

    Returns
    -------
    float
    """
    if zero_mean:
        z = z - z.mean(dim=-1, keepdim=True)
        v = v - v.mean(dim=-1, keepdim=True)
    g = soft_target_grad(z, v, temperature)
    r = logit_regression_grad(z, v, zero_mean=False)
    return float(torch.linalg.norm(g - r) / torch.linalg.norm(r))


def run(ws: Workspace) -> dict:
    """Real logit pairs: the label-trained small net (z) against the teacher (v), test set."""
    cfg = ws.cfg
    temps = list(cfg.gradient_temperatures)
    per_seed = {}
    for seed in cfg.seeds:
        v = ws.teacher(seed)["test"].double()
        z = ws.student(seed, cfg.student)["test"].double()
        rows = {"rel_diff_zero_mean": [], "rel_diff_raw": [], "grad_norm_t2": [],
                "grad_norm_plain": []}
        for t in temps:
            rows["rel_diff_zero_mean"].append(relative_difference(z, v, t, zero_mean=True))
            rows["rel_diff_raw"].append(relative_difference(z, v, t, zero_mean=False))
            rows["grad_norm_t2"].append(float(soft_target_grad(z, v, t).norm(dim=1).mean()))
            rows["grad_norm_plain"].append(float(
                soft_target_grad(z, v, t, scale_t2=False).norm(dim=1).mean()))
        zc, vc = z - z.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
        rows["limit_norm"] = float(logit_regression_grad(zc, vc, zero_mean=False)
                                   .norm(dim=1).mean())
        rows["mean_gap"] = float((z.mean(1) - v.mean(1)).abs().mean())
        rows["logit_std"] = float(torch.cat([zc, vc]).std())
        per_seed[str(seed)] = rows
    result = {"name": NAME, "title": TITLE, "temperatures": temps, "per_seed": per_seed,
              "num_examples": int(len(ws.data.y_test)), "student_hidden": cfg.student.hidden}
    result["headline"] = headline(result)
    return result


def _arr(result: dict, key: str) -> np.ndarray:
    return np.array([result["per_seed"][s][key] for s in result["per_seed"]])


def headline(result: dict) -> list[str]:
    """The one-line findings for the index (recomputed whenever the page is rendered)."""
    temps = result["temperatures"]
    zm, raw = _arr(result, "rel_diff_zero_mean"), _arr(result, "rel_diff_raw")
    g2, g1 = _arr(result, "grad_norm_t2"), _arr(result, "grad_norm_plain")
    i = temps.index(20.0) if 20.0 in temps else len(temps) // 2
    return [f"Relative difference from (z - v)/N at T = {temps[i]:g}: "
            f"{rp.fmt_ms(zm[:, i], 3)} with zero-meaned logits, {rp.fmt_ms(raw[:, i], 3)} "
            f"without; at T = {temps[-1]:g}: {rp.fmt_ms(zm[:, -1], 4)} vs "
            f"{rp.fmt_ms(raw[:, -1], 3)}.",
            f"Gradient norm from T = {temps[0]:g} to {temps[-1]:g}: with T^2 "
            f"{g2[:, 0].mean():.3g} -> {g2[:, -1].mean():.3g}; without T^2 "
            f"{g1[:, 0].mean():.3g} -> {g1[:, -1].mean():.3g}."]


def render(result: dict, out_dir: str | Path) -> list[Path]:
    """Write ``gradient.md`` and ``gradient_limit.png`` from a :func:`run` result."""
    out_dir = Path(out_dir)
    temps = np.array(result["temperatures"])
    zm, raw = _arr(result, "rel_diff_zero_mean"), _arr(result, "rel_diff_raw")
    g2, g1 = _arr(result, "grad_norm_t2"), _arr(result, "grad_norm_plain")
    lim = _arr(result, "limit_norm")

    fig, ax = rp.figure(11, 4, 2)
    rp.errorbar_line(ax[0], temps, zm, "zero-meaned logits")
    rp.errorbar_line(ax[0], temps, raw, "raw logits (no zero-meaning)")
    ref = zm[:, len(temps) // 2].mean() * temps[len(temps) // 2] / temps
    ax[0].plot(temps, ref, color="grey", ls=":", lw=1, label="slope 1/T")
    ax[0].set(xscale="log", yscale="log", xlabel="temperature T",
              ylabel="||g_T - (z - v)/N|| / ||(z - v)/N||",
              title="distance from logit regression")
    ax[0].legend(fontsize=8)
    rp.errorbar_line(ax[1], temps, g2, "with T^2 (kdexplain default)")
    rp.errorbar_line(ax[1], temps, g1, "without T^2")
    ax[1].axhline(lim.mean(), color="grey", ls="--", lw=1, label="||(z - v)/N||, centred")
    ax[1].set(xscale="log", yscale="log", xlabel="temperature T",
              ylabel="mean per-example gradient norm", title="gradient magnitude")
    ax[1].legend(fontsize=8)
    paths = [rp.save_figure(fig, out_dir / "gradient_limit.png")]

    rows = []
    for j, t in enumerate(temps):
        rows.append([f"{t:g}", rp.fmt_ms(zm[:, j], 4), rp.fmt_ms(raw[:, j], 4),
                     f"{g2[:, j].mean():.3g}", f"{g1[:, j].mean():.3g}"])
    slope = np.polyfit(np.log(temps[-4:]), np.log(zm.mean(0)[-4:]), 1)[0]
    paper = """
"In the high temperature limit, distillation is equivalent to
minimizing 1/2 (z_i - v_i)^2, provided the logits are zero-meaned separately for each
transfer case." And: "the magnitudes of the gradients produced by the soft targets scale as
1/T^2 [so] it is important to multiply them by T^2 when using both hard and soft targets."
"""
    setup = f"""
z = test-set logits of the small net trained on labels (2x{result['student_hidden']}), v = the
teacher's test-set logits ({result['num_examples']} images per seed). g_T is the
per-example gradient of kdexplain's `soft_target_loss` (T^2-scaled) taken by autograd;
(z - v)/N that of `logit_l2_loss`, with N = number of classes. Zero-meaned: both logit
vectors centred per example first; raw: the logits as the nets output them (their means
differ by {rp.fmt_ms(_arr(result, 'mean_gap'), 2)} on average per example).
"""
    body = f"""
{markdown_table(pd.DataFrame(rows, columns=["T", "rel. diff., zero-meaned", "rel. diff., raw",
              "mean norm of g_T (with T^2)", "without T^2"]))}

![gradient limit](gradient_limit.png)

**Reading.** With zero-meaned logits the relative difference
{'falls at every step of' if bool(np.all(np.diff(zm.mean(0)) < 0)) else 'does not fall monotonically with'} T
(log-log slope over the last four temperatures: {slope:.2f}; the expansion of the softmax
predicts -1) and reaches {zm[:, -1].mean():.1e} at T = {temps[-1]:g}. Without zero-meaning
it levels off ({raw[:, -2].mean():.3f} at T = {temps[-2]:g}, {raw[:, -1].mean():.3f} at
T = {temps[-1]:g}): the soft-target gradient is blind to a shift of
all logits, the squared error is not, so the equivalence needs both conditions. With the
T^2 factor the gradient norm settles at the logit-regression value
{lim.mean():.3g} instead of shrinking; without it the norm falls as 1/T^2
({g1[:, 0].mean():.3g} at T = {temps[0]:g}, {g1[:, -1].mean():.2e} at T = {temps[-1]:g}),
which is why soft and hard terms need the T^2 to keep their relative weight when T changes.
At small T (T = {temps[0]:g}) the logits (spread {_arr(result, 'logit_std').mean():.1f}) are
not small relative to T and the gradient is far from logit regression.
"""
    return rp.render_page(out_dir, result, where="section 2.1", paper=paper,
                          setup_title="Setup", setup=setup, body=body, figures=paths)
