"""The estimators side by side (issue 24): what each preset costs and how right it is.

For each case (a model, a layer, its images) and each preset, from the same images:

* **self-agreement**: two noise seeds of the preset, the Jaccard index of their concept cells
  at b = 0.2 (``H_bar - H_i > b``, ``H_bar`` pooled over the case's images, as the report);
* **agreement with the reference**: the Jaccard index of the preset's concept cells and the
  reference preset's at b = 0.2, and the Spearman correlation of the cell entropies (median
  over images);
* **distance to the optimum**: per image the median over cells of ``|sigma / sigma* - 1|``,
  its median over images (and the largest); ``sigma*`` is a long run of the optimum
  preset's optimiser (64 probes, ``--long-steps`` x 64 samples, no weight on the start,
  D0 from 512 samples, another seed);
* **precision**: the median over images of the result's own estimate (``precision``, the
  median standard error of log sigma: around the optimum for `default`, around the
  noise-free descent path for `paper` and `reference`);
* **sample-passes** per image (steps x samples + probes; D0's forward-only samples apart)
  and **seconds** per image (one thread, wall clock, the mean of the two seeds).

The cases: kdnet briefly trained on the built-in scenes at ``conv`` and ``fc1`` (64 px,
grid 16), and two torchvision models with random weights that nobody tuned on: resnet18 at
its classifier ``fc`` (7 outputs, 64 px, grid 8) and mobilenet_v3_small at ``features.6``
(64 px, grid 8), on scenes photos.

Usage::

    python benchmarks/bench_estimators.py [--images 4] [--presets default paper adam reference]
    python benchmarks/bench_estimators.py --quick      # a smoke run (minutes)
    python benchmarks/bench_estimators.py --images 2 --out scratch/estimators.md

benchmarks/write_performance_report.py runs it (4 images) into reports/performance.md.

Prints a markdown table (and with ``--out`` writes it as a page with the command, the
machine and the date); asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from kdexplain.concepts.calibration import concept_margins
from kdexplain.data import build_dataset, mask_to_grid
from kdexplain.models import build_model
from kdexplain.models.features import LayerFeature
from kdexplain.quantification import quantify

THRESHOLD = 0.2
CLASSES = ["bird", "cat", "elephant", "giraffe", "zebra"]


@dataclass
class Case:
    name: str
    model: torch.nn.Module
    layer: str
    grid: int
    images: torch.Tensor  # (N, C, H, W)
    foreground: np.ndarray  # (N, g, g) bool


def scenes(n: int, size: int, split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` scenes photos (one class after another) and their pixel masks."""
    ds = build_dataset("scenes", split, image_size=size, images_per_class=60,
                       val_per_class=10, seed=0, classes=CLASSES)
    idx = [(i * len(ds)) // n for i in range(n)]
    return (torch.stack([ds[i]["image"] for i in idx]),
            torch.stack([ds[i]["mask"] for i in idx]))


def trained_kdnet(epochs: int) -> torch.nn.Module:
    """kdnet (width 16) trained briefly on the scenes' train split (5 classes, 64 px): the
    same network as bench_quantify.py's, on the CPU."""
    from bench_quantify import trained_kdnet as bench_quantify_kdnet

    return bench_quantify_kdnet("cpu", epochs)[0]


def cases(n: int, quick: bool) -> list[Case]:
    def case(name, model, layer, grid, size):
        x, masks = scenes(n, size)
        fg = np.stack([mask_to_grid(mk, grid).numpy().astype(bool) for mk in masks])
        return Case(name, model, layer, grid, x, fg)

    kd = trained_kdnet(2 if quick else 8)
    torch.manual_seed(0)
    resnet = build_model("resnet18", 7).eval()
    mobile = build_model("mobilenet_v3_small", 7).eval()
    return [case("kdnet conv (trained)", kd, "conv", 16, 64),
            case("kdnet fc1 (trained)", kd, "fc1", 16, 64),
            case("resnet18 fc, 7 outputs (random)", resnet, "fc", 8, 64),
            case("mobilenet_v3_small features.6 (random)", mobile, "features.6", 8, 64)]


def concepts(entropy: torch.Tensor, fg: np.ndarray) -> np.ndarray:
    """Concept cells at b = 0.2 of one estimator's grids ``(N, g, g)``."""
    return concept_margins(entropy.numpy()[None], fg)[0] > THRESHOLD


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median over images of the rank correlation of two grids' cells."""
    def ranks(v):
        return v.flatten(1).argsort(1).argsort(1).float()
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    rho = (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))
    return float(rho.median())


#: The reference's noise seeds: apart from the other presets' (0, 1), whose ``D0`` and first
#: samples would otherwise be the reference's own draws.
REFERENCE_SEEDS = (10, 11)


def run(case: Case, preset: str, seed: int, **kw):
    """One quantification of the case; ``preset`` may end in ``+cv`` (the linear control
    variate on)."""
    if preset.endswith("+cv"):
        preset, kw = preset[:-3], {**kw, "control_variate": True}
    t = time.perf_counter()
    r = quantify(case.model, case.images, case.layer, grid=case.grid, preset=preset, seed=seed,
                 **kw)
    return r, (time.perf_counter() - t) / len(case.images)


def feature_dim(case: Case) -> int:
    """The analysed layer's output size for one image."""
    with torch.no_grad(), LayerFeature(case.model, case.layer) as phi:
        return phi(case.images[:1]).numel()


def passes(r, dim: int) -> float:
    """Sample-passes per image: steps x samples plus the start's probes; with the control
    variate, each sample also takes a forward-mode product and its backward (counted as one
    more pass), and the exact sensitivities one input-gradient per feature dimension."""
    per_sample = 2 if r.settings.get("control_variate") else 1
    extra = dim if r.settings.get("control_variate") else 0
    return (float((r.steps_run.float() * r.settings["samples"]).mean()) * per_sample
            + r.settings["probes"] + extra)


def distance(sigma: torch.Tensor, opt: torch.Tensor) -> torch.Tensor:
    """Per image, the median over cells of ``|sigma / sigma* - 1|``."""
    return (sigma / opt - 1).abs().flatten(1).median(1).values


def measure(case: Case, presets: list[str], long_steps: int) -> list[str]:
    """The table's rows of one case."""
    opt, _ = run(case, "default", 9, probes=64, steps=long_steps, samples=64, start_weight=0.0,
                 d0_samples=512, min_steps=long_steps)
    results = {p: [run(case, p, s) for s in (REFERENCE_SEEDS if p == "reference" else (0, 1))]
               for p in presets}
    ref = results.get("reference")
    dim = feature_dim(case)
    rows = []
    for p, ((r0, t0), (r1, t1)) in results.items():
        c0, c1 = concepts(r0.entropy, case.foreground), concepts(r1.entropy, case.foreground)
        d = distance(r0.sigma, opt.sigma)
        prec = r0.precision.nanmedian()
        if ref is None or p == "reference":
            vs_ref = "-"
        else:  # both seeds against both of the reference's: the mean of the four
            pairs = [(r, rr) for r in (r0, r1) for rr, _ in ref]
            jac = np.mean([jaccard(concepts(r.entropy, case.foreground),
                                   concepts(rr.entropy, case.foreground)) for r, rr in pairs])
            rho = np.mean([spearman(r.entropy, rr.entropy) for r, rr in pairs])
            vs_ref = f"{jac:.2f} / {rho:.2f}"
        rows.append(f"| {case.name} | {p} | {jaccard(c0, c1):.2f} ({int(c0.sum())} cells) | "
                    f"{vs_ref} | {d.median():.3f} (max {d.max():.3f}) | "
                    f"{'-' if prec.isnan() else f'{prec:.3f}'} | {passes(r0, dim):.0f} | "
                    f"{(t0 + t1) / 2:.1f} |")
        print(rows[-1], flush=True)
    return rows


def machine() -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


def _command(argv: list[str]) -> str:
    """The arguments without ``--out`` and its path (no machine paths in a report)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--out"):
            skip = a == "--out"
            continue
        out.append(a)
    return " ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4, help="images per case")
    ap.add_argument("--presets", nargs="+", default=["default", "paper", "paper+cv", "adam",
                                                     "reference"],
                    help="presets to compare; NAME+cv: with the linear control variate")
    ap.add_argument("--long-steps", type=int, default=100,
                    help="steps of 64 samples of the run that stands for the optimum")
    ap.add_argument("--cases", nargs="+", type=int, default=None,
                    help="which cases (0-3; default all)")
    ap.add_argument("--quick", action="store_true", help="2 images, short runs (a smoke run)")
    ap.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = ap.parse_args()
    n = 2 if args.quick else args.images
    long_steps = 10 if args.quick else args.long_steps
    lines = [
        "# Estimators: cost and accuracy of the presets\n",
        f"Generated by `python benchmarks/{Path(__file__).name} {_command(sys.argv[1:])}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC (torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread, CPU).\n",
        f"Machine: {machine()}. Load average at the start: "
        f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())} (1 / 5 / 15 min): other jobs "
        "shared the cores, so the seconds are upper bounds and only their ratios mean much.\n"]
    print("\n".join(lines))
    head = [f"{n} images per case; b = {THRESHOLD}; sigma* from {long_steps} x 64 samples. "
            "Columns: self-agreement = Jaccard of concept cells between noise seeds 0 and 1 "
            "(and seed 0's concept cells); vs reference = Jaccard with the reference's concept "
            f"cells / entropy rank correlation, the mean over the preset's seeds 0 and 1 "
            f"against the reference's seeds {REFERENCE_SEEDS[0]} and {REFERENCE_SEEDS[1]}; distance to the optimum = median over images "
            "of the median over cells of |sigma / sigma* - 1|; precision = the result's own "
            "median standard error of log sigma (around the optimum for default, around the "
            "noise-free descent path for paper and reference); sample-passes and seconds per "
            "image.\n",
            "| case | preset | self-agreement | vs reference (Jaccard / Spearman) | "
            "distance to the optimum | precision | sample-passes | s per image |",
            "|---|---|---|---|---|---|---|---|"]
    print("\n".join(head), flush=True)
    lines += head
    for case in selected(cases(n, args.quick), args.cases):
        lines += measure(case, args.presets, long_steps)
    write_page(lines, args.out)


def selected(all_cases: list[Case], which: list[int] | None) -> list[Case]:
    """The cases that ``--cases`` names (all without it)."""
    return all_cases if which is None else [all_cases[i] for i in which]


def write_page(lines: list[str], out: str | None) -> None:
    """With ``--out``: the page's lines and the load average at the end, to ``out``."""
    if out:
        end = f"\nLoad average at the end: {' / '.join(f'{v:.1f}' for v in os.getloadavg())}."
        Path(out).write_text("\n".join([*lines, end]) + "\n")


if __name__ == "__main__":
    main()
