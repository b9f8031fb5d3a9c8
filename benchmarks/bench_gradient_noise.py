"""How many samples the reference's own answer needs (issue 24): the noise of a sampled
gradient of the distortion, with and without the linear control variate.

The reference preset's kept sigma is the end of a noisy descent path: every step adds the
sampling error of a gradient of 96 samples, and the path's error is the sum of those errors
(the step size times the accumulated noise; how the samples are split into steps does not
change it). An unbiased estimator of the same path whose concept cells agree with the
reference's at least as well as two reference runs agree with each other must therefore have
no more path noise than the reference: as many samples as the reference spends until its kept
iterate (96 x the kept step), divided by whatever factor a variance reduction gives per
sample. This script measures that factor for the linear control variate
(``QuantifySettings.control_variate``), at the reference's own kept sigma:

* per sample ``s``: the gradient of ``mean_d (phi_d(x + sigma * eps_s) - phi_d(x))^2`` in
  each cell's sigma (plain), and the same minus the gradient of its linearisation at the
  clean image, ``mean_d (J (sigma * eps_s))_d^2`` (control variate; the linearisation's
  expectation is exact and adds no noise);
* the per-cell variance over samples of each, and their ratio (the variance reduction per
  sample);
* the samples an unbiased estimator needs to match the reference's path noise: ``96 x kept
  step`` plain, that divided by the ratio with the control variate (whose samples each cost a
  forward-mode product and an input gradient more).

Cases: as ``bench_estimators.py`` (kdnet trained on the scenes at ``conv`` and ``fc1``,
resnet18 ``fc`` and mobilenet_v3_small ``features.6`` with random weights).

Usage::

    python benchmarks/bench_gradient_noise.py [--images 2] [--samples 256] [--out FILE]

Prints a markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_estimators import REFERENCE_SEEDS, _command, cases, machine, run, selected, write_page  # noqa: E402

from kdexplain.models.features import LayerFeature  # noqa: E402
from kdexplain.quantification.result import upsample_grid  # noqa: E402

#: The reference's samples per step.
REFERENCE_SAMPLES = 96
#: The sample-pass budget of the issue's new preset.
BUDGET = 768


def per_sample_gradients(feat, x: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor,
                         grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradients in the cells' sigma ``(S, g*g)``: plain, and minus the gradient
    of the linearisation at the clean image (the control variate)."""
    S = eps.shape[0]
    H, W = x.shape[-2:]
    f0 = feat(x).detach()
    dim = f0[0].numel()
    up = upsample_grid(sigma[None], (H, W))[:, None].expand(S, 1, H, W).clone().requires_grad_(True)
    d = (feat(x + up * eps) - f0).pow(2).flatten(1).mean(1)
    (g_up,) = torch.autograd.grad(d.sum(), up)
    xs = x.expand(S, -1, -1, -1).contiguous()
    v = (up * eps).detach()
    with torch.no_grad():
        _, jv = torch.func.jvp(feat, (xs,), (v,))
    xg = xs.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(feat(xg), xg, jv * (2.0 / dim))
    g_lin = (gx * eps).sum(1, keepdim=True)  # d lin / d up

    def cells(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(S, grid, H // grid, grid, W // grid).sum((2, 4)).flatten(1)

    plain = cells(g_up)
    return plain, plain - cells(g_lin)


def measure(case, n_samples: int, chunk: int) -> str:
    ref, _ = run(case, "reference", REFERENCE_SEEDS[0])
    gen = torch.Generator().manual_seed(0)
    ratios, rel_sd = [], []
    # the feature hook is removed on leaving, as the model serves other cases
    with LayerFeature(case.model, case.layer) as phi:
        def feat(z: torch.Tensor) -> torch.Tensor:
            return torch.relu(phi(z))  # the presets' feature transform

        for b in range(len(case.images)):
            x = case.images[b:b + 1]
            plain, cv = [], []
            for _ in range(n_samples // chunk):
                eps = torch.randn(chunk, *x.shape[1:], generator=gen)
                p, c = per_sample_gradients(feat, x, ref.sigma[b], eps, case.grid)
                plain.append(p)
                cv.append(c)
            plain, cv = torch.cat(plain), torch.cat(cv)
            vp, vc = plain.var(0), cv.var(0)
            ratios.append(float(vp.sum() / vc.sum()))
            rel_sd.append(float((vp.sqrt() / plain.mean(0).abs().clamp(min=1e-30)).median()))
        with torch.no_grad():
            dim = feat(case.images[:1]).numel()
    kept = float(ref.selected_step.float().mean())
    ratio = float(np.median(ratios))
    need_plain = REFERENCE_SAMPLES * kept
    need_cv = need_plain / ratio
    row = (f"| {case.name} | {dim} | {kept:.1f} | {np.median(rel_sd):.1f} | "
           f"{' / '.join(f'{r:.2f}' for r in ratios)} | {need_plain:,.0f} | {need_cv:,.0f} | "
           f"{need_cv / BUDGET:.1f}x |")
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2, help="images per case")
    ap.add_argument("--samples", type=int, default=256, help="noise samples per image")
    ap.add_argument("--chunk", type=int, default=32, help="samples per batch")
    ap.add_argument("--cases", nargs="+", type=int, default=None, help="which cases (0-3)")
    ap.add_argument("--out", default=None, help="also write the page to this markdown file")
    args = ap.parse_args()
    torch.manual_seed(0)
    lines = [
        "# Gradient noise at the reference's kept sigma (issue 24)\n",
        f"Generated by `python benchmarks/{Path(__file__).name} {_command(sys.argv[1:])}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC (torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread, CPU). Machine: {machine()}.\n",
        f"{args.images} images per case, {args.samples} noise samples each, at the kept sigma "
        f"of the reference preset (noise seed {REFERENCE_SEEDS[0]}). Columns: the feature's "
        "dimension; the reference's kept step (mean over images); the per-sample relative "
        "standard deviation of the plain gradient (median over cells of SD / |mean|); the "
        "variance reduction of the linear control variate per sample (summed per-cell "
        "variance, plain / with it, per image); the samples an unbiased estimator needs to "
        f"have no more path noise than the reference ({REFERENCE_SAMPLES} x the kept step "
        f"plain, divided by the reduction with the control variate); that against the "
        f"{BUDGET} sample-passes of the issue's budget.\n",
        "| case | feature dim | reference's kept step | per-sample rel. SD (plain) | "
        "variance reduction of the control variate | samples to match the reference, plain | "
        "with the control variate | over the budget |",
        "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for case in selected(cases(args.images, False), args.cases):
        lines.append(measure(case, args.samples, args.chunk))
    write_page(lines, args.out)


if __name__ == "__main__":
    main()
