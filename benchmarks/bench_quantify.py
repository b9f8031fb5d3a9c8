"""Benchmark of the quantification engine (issues 2 and 15). Prints figures; asserts nothing.

Measurements, in one run:

1. The engine (all images x checkpoints in one call) against a straightforward sequential
   implementation (one image and one checkpoint at a time, as the original code), at equal
   work: the same steps and noise samples per (image, checkpoint).
2. The engine's time per step against the ceiling: a plain forward + input-backward of the
   truncated network at the same batch size (images x samples rows).
3. Time to accuracy: the sample-passes (steps x samples per image and checkpoint, plus
   the closed-form start's probes) of the default and the adam presets, and their distance
   to the optimum (median over cells of |sigma / sigma* - 1|): the linear closed form, a
   briefly trained kdnet (conv, fc1) and resnet18 at 112 px against long many-sample runs;
   the reference preset spends 80 x 96 = 7,680.
5. Chunk sizes: the calibrated default against hand-set ``max_batch`` on resnet18 and
   vgg11 at 224 px.
6. Checkpoints stacked into one vmapped forward against the loop.

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
from kdexplain.quantification import LayerFeature, frozen, quantify
from kdexplain.quantification.engine import (
    ENTROPY_OFFSET,
    activation_bytes_per_row,
    default_max_batch,
    resolve_memory_format,
)


def sequential_quantify(model, images, layer, grid, steps, samples, lr=0.1, lam=7.0,
                        sigma0=0.01, d0_samples=64, layout=torch.contiguous_format):
    """The straightforward way: one image at a time, Adam on log sigma, fixed steps (the
    ``adam`` preset's optimiser, without its plateau stop).

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
                 plateau=0.0, preset="adam")
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
        quantify(models, x, layer, steps=1, samples=samples, device=dev, preset="adam")
        _sync(dev)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        quantify(models, x, layer, steps=1 + n_steps, samples=samples, device=dev,
                 min_lr_factor=0.0, plateau=0.0, preset="adam")
        _sync(dev)
        t_step = (time.perf_counter() - t0 - t_one) / n_steps
        print(f"| {layer} | {B * samples} x {K} ckpts | {1000 * t_ceil:.1f} | {1000 * t_step:.1f} | "
              f"{t_ceil / t_step:.2f} |")

    accuracy_table(models, x, dev, args.quick)
    chunking_table(dev, args.quick)
    stacking_table(dev, args.quick)


def passes(r):
    """Sample-passes per unit: the optimisation's (steps x samples) plus the start's probes."""
    return float((r.steps_run.float() * r.settings["samples"]).mean()) + r.settings["probes"]


def accuracy_row(name, r, ref, seconds):
    err = (r.sigma / ref - 1).abs().flatten(-2).median(-1).values.flatten()
    print(f"| {name} | {r.settings['preset']} | {passes(r):.0f} | {err.median():.3f} "
          f"(max {err.max():.3f}) | {int((err <= 0.05).sum())}/{len(err)} | {seconds:.1f} |")


def trained_kdnet(dev, epochs):
    """A kdnet trained briefly on the built-in scenes (5 classes), and 4 of its images."""
    from kdexplain.data import build_dataset
    ds = build_dataset("scenes", "train", image_size=64, images_per_class=60, val_per_class=10,
                       seed=0, classes=["bird", "cat", "elephant", "giraffe", "zebra"])
    X = torch.stack([ds[i]["image"] for i in range(len(ds))])
    Y = torch.tensor([ds[i]["label"] for i in range(len(ds))])
    torch.manual_seed(0)
    m = build_model("kdnet", 5, width=16, hidden=256, dropout=0.3)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 16):
            b = perm[i:i + 16]
            loss = F.cross_entropy(m(X[b]), Y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    acc = float((m(X).argmax(1) == Y).float().mean())
    return m.to(dev), X[::15][:4].to(dev), acc


def timed(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` and the seconds it took."""
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def long_run(model, x, layer, dev, quick, steps=100, **kw):
    """The optimum: the default optimiser's average over many samples (64 probes, and
    steps x 64 samples; 20 x 32 with quick), seed 1."""
    steps, samples = (20, 32) if quick else (steps, 64)
    return quantify(model, x, layer, probes=64, steps=steps, samples=samples, start_weight=0.0,
                    d0_samples=512, device=dev, seed=1, min_steps=steps, **kw)


def accuracy_table(models, x, dev, quick):
    print("\n## (3) time to accuracy (the reference preset spends 80 x 96 = 7,680 sample-passes)")
    print("Distance to the optimum: per unit (image, checkpoint) the median over cells of "
          "abs(sigma / sigma* - 1); the table gives its median over units (and the largest). "
          "Sample-passes per unit: the optimisation's steps x samples plus the start's "
          "probes (D0's 64 forward-only samples are not counted). sigma*: the closed form "
          "(linear), else a long run of the default optimiser (64 probes, 100 steps x 64 "
          "samples, no weight on the start, D0 from 512 samples, another seed).\n")
    print("| case | preset | sample-passes | distance to the optimum | units within 5% | wall s |")
    print("|---|---|---|---|---|---|")
    size = x.shape[-1]
    lin, opt = linear_case(H=size)
    xl = torch.randn(2 if quick else 4, 3, size, size, device=dev)
    for preset in ("default", "adam"):
        r, t = timed(quantify, lin.to(dev), xl, "1", feature_transform="identity",
                     device=dev, preset=preset)
        accuracy_row(f"linear closed form ({size}px, 64 outputs)", r, opt.to(dev).cpu(), t)
    trained, xt, acc = trained_kdnet(dev, 2 if quick else 8)
    n_img = 2 if quick else 4
    for layer in ("conv", "fc1"):
        ref = long_run(trained, xt[:n_img], layer, dev, quick)
        for preset in ("default", "adam"):
            r, t = timed(quantify, trained, xt[:n_img], layer, device=dev, seed=2,
                         preset=preset)
            accuracy_row(f"kdnet {layer}, trained (train accuracy {acc:.0%})", r, ref.sigma, t)
    res = build_model("resnet18", 10).to(dev).eval()
    px = 64 if quick else 112
    xr = torch.randn(2, 3, px, px, device=dev)
    ref = long_run(res, xr, "layer4", dev, quick, steps=40)
    r, t = timed(quantify, res, xr, "layer4", device=dev, seed=2)
    accuracy_row(f"resnet18 layer4, {px}px (random weights)", r, ref.sigma, t)


def chunking_table(dev, quick):
    """Rows per forward pass: the default (calibrated on the first call, cached for the
    next) against hand-set values, at equal work."""
    from kdexplain.quantification import chunking
    print("\n## (5) chunk size (rows per forward pass): the default against hand-set values")
    px = 64 if quick else 224
    cases = [("resnet18", "layer4", 4, 2), ("vgg11", "features.10", 2, 1)]
    hand = [1, 8, 32, 64] if not quick else [1, 8]
    print(f"Equal work per column: the images x 16 samples x the steps, 10 probes, D0 of 64 "
          f"samples, at {px}px, random weights. 'default, first call' includes the "
          f"calibration; 'default, cached' is the next call of a sweep.\n")
    print("| model | " + " | ".join(f"max_batch {h} s" for h in hand)
          + " | default, first call s | default, cached s | chosen | default / best hand-set |")
    print("|---|" + "---|" * (len(hand) + 4))
    for arch, layer, n_img, steps in cases:
        model = build_model(arch, 10).to(dev).eval()
        x = torch.randn(n_img, 3, px, px, device=dev)
        kw = dict(steps=steps, device=dev, probes=10)
        quantify(model, x[:1], layer, steps=1, samples=2, probes=1, d0_samples=2,
                 max_batch=2, device=dev)  # warm-up
        times = [timed(quantify, model, x, layer, max_batch=h, **kw)[1] for h in hand]
        chunking._CALIBRATED.clear()
        _, first = timed(quantify, model, x, layer, **kw)
        _, cached = timed(quantify, model, x, layer, **kw)
        chosen = next(iter(chunking._CALIBRATED.values()), "not settled")
        print(f"| {arch} {layer} | " + " | ".join(f"{t:.1f}" for t in times)
              + f" | {first:.1f} | {cached:.1f} | {chosen} | {first / min(times):.2f} "
              f"(cached {cached / min(times):.2f}) |")


def stacking_table(dev, quick):
    """K checkpoints as one vmapped forward against the loop, at equal work."""
    print("\n## (6) K checkpoints: one stacked (vmap) forward against the loop, equal work")
    print("| model | K | loop s | stacked s | loop / stacked |")
    print("|---|---|---|---|---|")
    K = 2 if quick else 6
    models = [build_model("kdnet", 10).to(dev).eval() for _ in range(K)]
    x = torch.randn(2 if quick else 8, 3, 64, 64, device=dev)
    kw = dict(steps=3 if quick else 5, device=dev)
    quantify(models, x[:1], "conv", steps=1, stack_checkpoints=True, device=dev)  # warm-up
    _, t_loop = timed(quantify, models, x, "conv", stack_checkpoints=False, **kw)
    _, t_stack = timed(quantify, models, x, "conv", stack_checkpoints=True, **kw)
    print(f"| kdnet conv, 64px | {K} | {t_loop:.2f} | {t_stack:.2f} | {t_loop / t_stack:.2f}x |")



if __name__ == "__main__":
    main()
