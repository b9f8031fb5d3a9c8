"""Can a cheap estimator give the reference's own answer? (issue 24, part 1). Asserts nothing.

The reference preset keeps an early iterate of plain SGD on raw sigma (learning rate 1e-4,
from sigma0 = 0.01, clamped, the x1.5 rule after step 59, the iterate whose mean entropy
is closest to -2.8), not the optimum, and b = 0.2 was set for it. Its path is a function of
the per-cell sensitivities. Each candidate below estimates the sensitivities
``a_i`` of a quadratic model ``D / D0 = sum_i a_i sigma_i^2`` and then runs the
reference's rule on that model, deterministically (no samples: the whole path is cheap):

* ``quadratic at the optimum``: ``a_i = lambda_H / (2 n sigma*_i^2)`` from the default
  preset's optimum (its own cost);
* ``gradient at sigma0``: ``a_i = dE[D/D0]/dsigma_i / (2 sigma0)`` at the uniform start,
  from ``--samples`` noise samples per image (one backward over them).

Reported per layer: the Jaccard index of the concept cells at b = 0.2 (``H_bar`` pooled
over the images) against the reference with noise seed 0, the reference's own agreement
between seeds 0 and 1, the entropy rank correlation (median over images), the kept step
and the sample-passes.

Usage::

    python benchmarks/bench_reference_path.py [--images 4] [--samples 512]
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import date

import numpy as np
import torch
import torch.nn.functional as F
from bench_estimators import concepts, jaccard, scenes, spearman, trained_kdnet

from kdexplain.data import mask_to_grid
from kdexplain.quantification import LayerFeature, frozen, quantify
from kdexplain.quantification.result import ENTROPY_OFFSET


def reference_rule(a: torch.Tensor, lam: float = 7.0, lr: float = 1e-4, steps: int = 80,
                   rule_step: int = 59, target: float = -2.8, sigma0: float = 0.01
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference preset's rule on ``D / D0 = sum_i a_i sigma_i^2``, ``a`` (B, g, g):
    the kept sigma (B, g, g) and the kept step (B,)."""
    B, n = a.shape[0], a[0].numel()
    sig = torch.full_like(a, sigma0)
    lam_u = torch.full((B,), lam)
    active = torch.ones(B, dtype=torch.bool)
    kept, ent = [], []
    for t in range(steps):
        sig = sig.clamp(1e-3, 1.0)
        kept.append(sig.clone())
        ent.append(torch.where(active, sig.log().flatten(1).mean(1) + ENTROPY_OFFSET, torch.nan))
        grad = 2 * a * sig - lam_u[:, None, None] / (n * sig)
        sig = torch.where(active[:, None, None], sig - lr * grad, sig)
        if t == rule_step:
            reached = torch.stack(ent).nan_to_num(-math.inf).amax(0) > target
            lam_u = torch.where(active & ~reached, lam_u * 1.5, lam_u)
            active = active & ~reached
    sel = (torch.stack(ent) - target).abs().nan_to_num(math.inf).argmin(0)
    return torch.stack(kept)[sel, torch.arange(B)], sel


def gradient_at_start(model, x, layer, grid, samples, sigma0=0.01, seed=0) -> torch.Tensor:
    """``a_i`` from the sampled gradient of ``D / D0`` at ``sigma = sigma0`` (B, g, g)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with frozen(model), LayerFeature(model, layer) as phi:
        for xi in x:
            xi = xi[None]
            f0 = torch.relu(phi(xi)).detach()
            sig = torch.full((1, 1, grid, grid), sigma0, requires_grad=True)
            up = F.interpolate(sig, size=xi.shape[-2:], mode="nearest")
            total = 0.0
            for start in range(0, samples, 64):
                eps = torch.randn(min(64, samples - start), *xi.shape[1:], generator=gen)
                total = total + (torch.relu(phi(xi + up * eps)) - f0).pow(2).flatten(1).mean(1).sum()
            d = total / samples
            (grad,) = torch.autograd.grad(d / d.detach(), sig)
            out.append(grad[0, 0] / (2 * sigma0))
    return torch.stack(out).clamp(min=1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--samples", type=int, default=512)
    args = ap.parse_args()
    model = trained_kdnet(8)
    x, masks = scenes(args.images, 64)
    fg = np.stack([mask_to_grid(m, 16).numpy().astype(bool) for m in masks])
    print(f"# The reference's answer, cheaply — {date.today()} — kdnet (trained 8 epochs on "
          f"the scenes), {args.images} images, 64 px, grid 16, b = 0.2\n")
    print("| layer | estimator | Jaccard vs reference | entropy rank corr. | kept steps | "
          "sample-passes | s per image |")
    print("|---|---|---|---|---|---|---|")
    for layer in ("conv", "fc1"):
        t = time.perf_counter()
        refs = [quantify(model, x, layer, preset="reference", seed=s) for s in (0, 1)]
        t_ref = (time.perf_counter() - t) / (2 * len(x))
        h_ref = refs[0].entropy
        c_ref = concepts(h_ref, fg)

        def row(name, sigma, sel, passes, secs, layer=layer, c_ref=c_ref, h_ref=h_ref):
            h = sigma.log() + ENTROPY_OFFSET
            print(f"| {layer} | {name} | {jaccard(concepts(h, fg), c_ref):.2f} | "
                  f"{spearman(h, h_ref):.3f} | {sel.tolist()} | {passes:.0f} | {secs:.1f} |",
                  flush=True)

        passes = float((refs[1].steps_run.float() * 96).mean())
        row("reference, noise seed 1", refs[1].sigma, refs[1].selected_step, passes, t_ref)
        t = time.perf_counter()
        opt = quantify(model, x, layer, seed=1)
        a = 7.0 / (2 * opt.sigma[0].numel() * opt.sigma**2)
        sig, sel = reference_rule(a)
        p = float((opt.steps_run.float() * 16).mean()) + 10
        row("quadratic at the optimum", sig, sel, p, (time.perf_counter() - t) / len(x))
        t = time.perf_counter()
        sig, sel = reference_rule(gradient_at_start(model, x, layer, 16, args.samples))
        row("gradient at sigma0", sig, sel, args.samples, (time.perf_counter() - t) / len(x))


if __name__ == "__main__":
    main()
