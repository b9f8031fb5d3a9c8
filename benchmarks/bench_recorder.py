"""The Recorder's overhead per training step, against the same loop without it, in one run.

A plain PyTorch loop (SGD, cross-entropy, synthetic images in memory) trains one model for
``--epochs`` epochs of ``--steps`` steps, once with a :class:`kdexplain.record.Recorder`
(``step()`` after each optimiser step, ``end_epoch()`` after each epoch, every epoch kept:
the most writing it can do) and once without. The two variants alternate for ``--rounds``
rounds, each from the same initial weights and data, so a machine that slows down or speeds
up during the run affects both alike; the figure is the median over rounds of the time per
step, and the overhead is the ratio of the medians. Printed as a table (and ``--json``).

Examples::

    OMP_NUM_THREADS=1 python benchmarks/bench_recorder.py                    # kdnet, 64 px
    python benchmarks/bench_recorder.py --device cuda --arch vgg16 --image-size 224 \\
        --batch-size 64 --layer conv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kdexplain.models import build_model
from kdexplain.record import Recorder


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def one_round(args, device, init, images, labels, out: Path | None
              ) -> tuple[float, float, float]:
    """Seconds per step of one training run (recorded when ``out`` is given), and the
    seconds per step spent inside the recorder's ``step()`` and ``end_epoch()`` calls
    (timed around each call)."""
    model = build_model(args.arch, args.classes, **args.kwargs).to(device)
    model.load_state_dict(init)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    rec = None
    if out is not None:
        rec = Recorder(out, model, arch=args.arch, layer=args.layer, num_classes=args.classes,
                       keep=range(args.epochs + 1), role="baseline", model_kwargs=args.kwargs)
        rec.start()
    model.train()
    _sync(device)
    inside_step = inside_epoch = 0.0
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        for s in range(args.steps):
            i = (s * args.batch_size) % len(labels)
            x, y = images[i:i + args.batch_size], labels[i:i + args.batch_size]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if rec is not None:
                _sync(device)
                t1 = time.perf_counter()
                rec.step()
                _sync(device)
                inside_step += time.perf_counter() - t1
        if rec is not None:
            t1 = time.perf_counter()
            rec.end_epoch(epoch, train_loss=None)
            inside_epoch += time.perf_counter() - t1
    _sync(device)
    steps = args.epochs * args.steps
    return (time.perf_counter() - t0) / steps, inside_step / steps, inside_epoch / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="kdnet")
    p.add_argument("--layer", default="fc1")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=30, help="steps per epoch")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    args.kwargs = {}
    device = torch.device(args.device)
    torch.manual_seed(0)
    init = build_model(args.arch, args.classes, **args.kwargs).state_dict()
    n = args.batch_size * 8
    images = torch.randn(n, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, args.classes, (n,), device=device)
    one_round(args, device, init, images, labels, None)  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {"without": [], "with": [], "inside": [], "step": [],
                                     "end_epoch": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            times["without"].append(one_round(args, device, init, images, labels, None)[0])
            per_step, in_step, in_epoch = one_round(args, device, init, images, labels,
                                                    Path(tmp) / f"round{r}")
            times["with"].append(per_step)
            times["step"].append(in_step)
            times["end_epoch"].append(in_epoch)
            times["inside"].append(in_step + in_epoch)
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["with"] / med["without"] - 1.0
    inside_share = med["inside"] / med["without"]
    result = {"arch": args.arch, "layer": args.layer, "image_size": args.image_size,
              "batch_size": args.batch_size, "steps_per_epoch": args.steps,
              "epochs": args.epochs, "rounds": args.rounds, "device": str(device),
              "threads": torch.get_num_threads(), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(),
              "ms_per_step_without": 1e3 * med["without"], "ms_per_step_with": 1e3 * med["with"],
              "ms_per_step_inside_recorder": 1e3 * med["inside"],
              "ms_per_step_in_step_calls": 1e3 * med["step"],
              "ms_per_step_in_end_epoch_calls": 1e3 * med["end_epoch"], "overhead": overhead,
              "inside_share": inside_share, "all_ms": {k: [1e3 * t for t in v] for k, v in times.items()}}
    print(f"{args.arch} {args.image_size}px batch {args.batch_size} layer {args.layer} on "
          f"{device} ({torch.get_num_threads()} threads), {args.epochs} epochs x {args.steps} "
          f"steps, {args.rounds} rounds (median):")
    print(f"  without the recorder: {result['ms_per_step_without']:.2f} ms/step")
    print(f"  with the recorder:    {result['ms_per_step_with']:.2f} ms/step "
          f"(every epoch kept: a checkpoint per epoch)")
    print(f"  overhead (ratio of the medians): {100 * overhead:+.1f}%")
    print(f"  time inside the recorder's calls: {result['ms_per_step_inside_recorder']:.3f} "
          f"ms/step = {100 * inside_share:.2f}% of a step without it (step(): "
          f"{result['ms_per_step_in_step_calls']:.3f}, end_epoch() spread over the epoch's "
          f"steps: {result['ms_per_step_in_end_epoch_calls']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
