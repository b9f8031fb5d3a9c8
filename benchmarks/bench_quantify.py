"""Benchmark of the quantification engine (issue 2). Prints figures; asserts nothing.

Three measurements, in one run, on the same model and images:

1. The engine (all images x checkpoints in one call) against a straightforward sequential
   implementation (one image and one checkpoint at a time, as the original code), at equal
   work: the same steps and noise samples per (image, checkpoint).
2. The engine's time per step against the ceiling: a plain forward + input-backward of the
   truncated network at the same batch size (images x samples rows).
3. Time to accuracy: the sample-passes (steps x samples per image and checkpoint) the
   default preset spends until it stops, and its distance to the optimum (median over
   cells of |sigma / sigma* - 1|), on the linear closed-form case and on a small CNN
   against a long many-sample run; the reference preset spends 80 x 96 = 7,680.

Usage::

    python benchmarks/bench_quantify.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from datetime import date

import torch
import torch.nn.functional as F
from torch import nn

from kdexplain.models import build_model
from kdexplain.quantify import LayerFeature, frozen, quantify
from kdexplain.quantify.engine import (
    ENTROPY_OFFSET,
    activation_bytes_per_row,
    default_max_batch,
    resolve_memory_format,
)


def sequential_quantify(model, images, layer, grid, steps, samples, lr=0.1, lam=7.0,
                        sigma0=0.01, d0_samples=64, layout=torch.contiguous_format):
    """The straightforward way: one image at a time, Adam on log sigma, fixed steps.

    ``layout``: memory format of the noisy batch (the original: contiguous).
    """
    out = []
    with frozen(model), LayerFeature(model, layer) as phi:
        for x in images:
            x = x[None]
            with torch.no_grad():
                f0 = torch.relu(phi(x))
                up0 = F.interpolate(torch.full((1, 1, grid, grid), sigma0), size=x.shape[-2:],
                                    mode="nearest")
                noisy = x + up0 * torch.randn(d0_samples, *x.shape[1:], device=x.device)
                d0 = (torch.relu(phi(noisy)) - f0).pow(2).mean()
            log_sigma = torch.full((1, 1, grid, grid), math.log(sigma0), device=x.device,
                                   requires_grad=True)
            opt = torch.optim.Adam([log_sigma], lr=lr, betas=(0.9, 0.99))
            for _ in range(steps):
                up = F.interpolate(log_sigma.exp(), size=x.shape[-2:], mode="nearest")
                noisy = x + up * torch.randn(samples, *x.shape[1:], device=x.device)
                d = (torch.relu(phi(noisy.contiguous(memory_format=layout))) - f0).pow(2).mean()
                loss = d / d0 - lam * (log_sigma.mean() + ENTROPY_OFFSET)
                opt.zero_grad()
                loss.backward()
                opt.step()
            out.append(log_sigma.detach().exp()[0, 0])
    return torch.stack(out)


def ceiling_step_time(model, layer, x, samples, repeats):
    """Forward + backward to the input of the truncated net over one step's rows.

    The same rows (images x samples), in the same chunks (the engine's default
    ``max_batch``) and memory layout as the engine uses: what remains is pure compute.
    """
    rows = x.repeat_interleave(samples, 0)
    layout = resolve_memory_format("auto", model, x.device)
    chunk = engine_rows(model, layer, x)
    parts = [rows[i:i + chunk].contiguous(memory_format=layout) for i in range(0, len(rows), chunk)]

    def one_step():
        for part in parts:
            xi = part.clone().requires_grad_(True)
            phi(xi).pow(2).mean().backward()

    with frozen(model), LayerFeature(model, layer) as phi:
        for _ in range(2):  # warm-up
            one_step()
        _sync(x.device)
        t = time.perf_counter()
        for _ in range(repeats):
            one_step()
        _sync(x.device)
    return (time.perf_counter() - t) / repeats


def engine_rows(model, layer, x):
    """The engine's default chunk (rows per forward pass) for this model, layer and input."""
    layout = resolve_memory_format("auto", model, x.device)
    with frozen(model), LayerFeature(model, layer) as phi:
        per_row = activation_bytes_per_row(phi, model, x[:1].contiguous(memory_format=layout))
    return default_max_batch(x.device, per_row)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def linear_case(seed=0, C=3, H=64, grid=16, dim=64):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(dim, C * H * H, generator=gen)
    scale = torch.rand(grid, grid, generator=gen) * 3 + 0.2
    k = H // grid
    weight = weight * scale.repeat_interleave(k, 0).repeat_interleave(k, 1).flatten().repeat(C)[None]
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * H, dim, bias=False))
    model[1].weight.data = weight
    cell = (torch.arange(grid * grid).reshape(grid, grid).repeat_interleave(k, 0)
            .repeat_interleave(k, 1).flatten().repeat(C))
    c = torch.zeros(grid * grid).index_add_(0, cell, (weight**2).sum(0)).reshape(grid, grid)
    opt = (7.0 * 0.01**2 * c.sum() / (2 * c.numel() * c)).sqrt()
    return model, opt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="fewer images/steps (smoke run)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--checkpoints", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    B = 2 if args.quick else args.images
    K = 2 if args.quick else args.checkpoints
    steps, samples = (5, 16) if args.quick else (20, 16)
    size = args.image_size
    models = [build_model("kdnet", 10).to(dev).eval() for _ in range(K)]
    x = torch.randn(B, 3, size, size, device=dev)
    print(f"# kdexplain quantify benchmark — {date.today()} — {platform.node()} — "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {dev}"
          + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""))
    print(f"model kdnet (width 16), {size}x{size} inputs, grid 16, {B} images x {K} checkpoints,"
          f" {steps} steps x {samples} samples per unit\n")

    layout = resolve_memory_format("auto", models[0], dev)
    print("## (1) engine vs sequential, equal work")
    print(f"The engine runs chunks of {engine_rows(models[0], 'conv', x)} (conv) and "
          f"{engine_rows(models[0], 'fc1', x)} (fc1) rows in the "
          f"{'channels-last' if layout == torch.channels_last else 'contiguous'} layout. "
          "The sequential implementation runs one image and one checkpoint at a time in the "
          "original's contiguous layout; the last column gives it the engine's layout too.\n")
    print("| layer | sequential s | engine s | speed-up | sequential in the engine's layout s "
          "| speed-up over it |")
    print("|---|---|---|---|---|---|")
    for layer in ("conv", "fc1"):
        quantify(models[0], x[:1], layer, steps=2, samples=samples, device=dev)  # warm-up
        _sync(dev)
        t = time.perf_counter()
        for m in models:
            sequential_quantify(m, x, layer, 16, steps, samples)
        _sync(dev)
        t_seq = time.perf_counter() - t
        t = time.perf_counter()
        for m in models:
            sequential_quantify(m, x, layer, 16, steps, samples, layout=layout)
        _sync(dev)
        t_seq_l = time.perf_counter() - t
        t = time.perf_counter()
        # equal work: fixed steps (the plateau stop off), same d0 samples
        quantify(models, x, layer, steps=steps, samples=samples, device=dev, min_lr_factor=0.0,
                 plateau=0.0)
        _sync(dev)
        t_eng = time.perf_counter() - t
        print(f"| {layer} | {t_seq:.2f} | {t_eng:.2f} | {t_seq / t_eng:.2f}x | {t_seq_l:.2f} | "
              f"{t_seq_l / t_eng:.2f}x |")

    print("\n## (2) engine step time vs the ceiling (forward + input-backward, same rows)")
    print("| layer | rows per step | ceiling ms/step | engine ms/step | fraction of ceiling |")
    print("|---|---|---|---|---|")
    for layer in ("conv", "fc1"):
        reps = 3 if args.quick else 10
        t_ceil = ceiling_step_time(models[0], layer, x, samples, reps) * K
        n_steps = 4 if args.quick else 15
        t0 = time.perf_counter()
        quantify(models, x, layer, steps=1, samples=samples, device=dev)
        _sync(dev)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantify(models, x, layer, steps=1 + n_steps, samples=samples, device=dev,
                 min_lr_factor=0.0, plateau=0.0)
        _sync(dev)
        t_step = (time.perf_counter() - t0 - t_one) / n_steps
        print(f"| {layer} | {B * samples} x {K} ckpts | {1000 * t_ceil:.1f} | {1000 * t_step:.1f} | "
              f"{t_ceil / t_step:.2f} |")

    print("\n## (3) time to accuracy of the default preset (reference preset: 7,680 sample-passes)")
    print("| case | sample-passes (mean over units) | median over cells of abs(sigma/sigma* - 1) | units within 5% |")
    print("|---|---|---|---|")
    lin, opt = linear_case(H=size)
    xl = torch.randn(4 if not args.quick else 2, 3, size, size)
    r = quantify(lin.to(dev), xl.to(dev), "1", feature_transform="identity", device=dev)
    err = (r.sigma / opt - 1).abs().flatten(1).median(1).values
    passes = (r.steps_run.float() * r.settings["samples"]).mean()
    print(f"| linear closed form ({size}px, 64 outputs) | {passes:.0f} | {err.median():.3f} "
          f"(max {err.max():.3f}) | {int((err <= 0.05).sum())}/{len(err)} |")
    n_img = 2 if args.quick else 4
    for layer in ("conv", "fc1"):
        long_steps, long_samples = (60, 64) if args.quick else (200, 96)
        ref = quantify(models[0], x[:n_img], layer, steps=long_steps, samples=long_samples,
                       patience=40, min_lr_factor=1e-3, d0_samples=512, device=dev, seed=1)
        r = quantify(models[0], x[:n_img], layer, device=dev, seed=2)
        err = (r.sigma / ref.sigma - 1).abs().flatten(1).median(1).values
        passes = (r.steps_run.float() * r.settings["samples"]).mean()
        print(f"| kdnet {layer} vs {long_steps}x{long_samples} run | {passes:.0f} | "
              f"{err.median():.3f} (max {err.max():.3f}) | {int((err <= 0.05).sum())}/{len(err)} |")
    settings_table(models, x, dev, args.quick)


def settings_table(models, x, dev, quick):
    print("\n## (4) default-preset settings: sample-passes and accuracy (median over units of the"
          " median over cells of abs(sigma/sigma* - 1))")
    print("| setting | linear: passes | linear: error | kdnet fc1: passes | kdnet fc1: error |")
    print("|---|---|---|---|---|")
    size = x.shape[-1]
    lin, opt = linear_case(H=size)
    xl = torch.randn(2 if quick else 4, 3, size, size, device=dev)
    n_img = 2 if quick else 4
    long_steps, long_samples = (60, 64) if quick else (200, 96)
    ref = quantify(models[0], x[:n_img], "fc1", steps=long_steps, samples=long_samples,
                   patience=40, min_lr_factor=1e-3, d0_samples=512, device=dev, seed=1)
    variants = [("default (lr 0.1, 16 samples)", {}), ("lr 0.05", {"lr": 0.05}),
                ("lr 0.2", {"lr": 0.2}), ("8 samples", {"samples": 8}),
                ("32 samples", {"samples": 32}), ("patience 5", {"patience": 5})]
    for name, kw in variants:
        rl = quantify(lin.to(dev), xl, "1", feature_transform="identity", device=dev, **kw)
        el = (rl.sigma / opt - 1).abs().flatten(1).median(1).values.median()
        pl = (rl.steps_run.float() * rl.settings["samples"]).mean()
        rc = quantify(models[0], x[:n_img], "fc1", device=dev, seed=2, **kw)
        ec = (rc.sigma / ref.sigma - 1).abs().flatten(1).median(1).values.median()
        pc = (rc.steps_run.float() * rc.settings["samples"]).mean()
        print(f"| {name} | {pl:.0f} | {el:.3f} | {pc:.0f} | {ec:.3f} |")


if __name__ == "__main__":
    main()
