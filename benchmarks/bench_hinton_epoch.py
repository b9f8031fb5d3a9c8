"""Seconds per training epoch of the Hinton nets on a full-size data set. Prints figures.

Times one epoch of each net of ``--protocol paper`` (the teacher with dropout and 2-pixel
jitter, the 2x800 student on labels and distilled, the 2x300 and 2x30 sweep students) on
the whole training split, one seed, with the thread count given (CPU time, which a free
core turns into wall-clock; wall-clock is printed too), and multiplies them by the epochs
of the protocol into an estimate of the full run's time on one core.

Usage::

    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/bench_hinton_epoch.py --dataset fashion \
        [--threads 1] [--nets teacher,student]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyses.hinton.config import make_config  # noqa: E402
from analyses.hinton.nets import train_mlp  # noqa: E402
from analyses.hinton.workspace import load_data  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--root", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nets", default="teacher,student,distilled,wide,narrow")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = make_config(protocol="paper", dataset=args.dataset)
    t0 = time.perf_counter()
    data = load_data(cfg, args.root)
    print(f"loaded {data.name}: {len(data.y_train)} train / {len(data.y_test)} test in "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s)")
    x, y = data.x_train, data.y_train
    teacher_logits = torch.randn(len(x), data.num_classes)  # the cost does not depend on them
    nets = {"teacher": (cfg.teacher, None), "student": (cfg.student, None),
            "distilled": (cfg.student, cfg.distill_temperature),
            "wide": (cfg.wide, 3.0), "narrow": (cfg.narrow, 3.0)}
    per_epoch = {}  # CPU seconds: what a free core would take (wall-clock varies with load)
    for name in args.nets.split(","):
        net, temp = nets[name]
        one = replace(net, epochs=1)
        t0, c0 = time.perf_counter(), time.process_time()
        train_mlp(x, y, one, 0, image_shape=data.image_shape, num_classes=data.num_classes,
                  teacher_logits=None if temp is None else teacher_logits,
                  temperature=temp or 1.0, soft_weight=cfg.soft_weight)
        per_epoch[name] = time.process_time() - c0
        print(f"{name:9s} 2x{net.hidden:<5d} one epoch of {len(x)} images: "
              f"{per_epoch[name]:.1f} s CPU, {time.perf_counter() - t0:.1f} s wall "
              f"({net.epochs} epochs in the protocol)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if set(per_epoch) == set(nets):
        k = len(cfg.sweep_temperatures)
        mc_epochs = 2 * cfg.student.epochs  # two restricted transfer sets, matched steps
        per_seed = (per_epoch["teacher"] * cfg.teacher.epochs
                    + per_epoch["student"] * cfg.student.epochs
                    + per_epoch["distilled"] * (cfg.student.epochs + mc_epochs)
                    + per_epoch["wide"] * cfg.wide.epochs * (k + 1)
                    + per_epoch["narrow"] * cfg.narrow.epochs * (k + 1))
        print(f"estimate, distillation + missing-class, one free core: {per_seed / 60:.1f} min "
              f"per seed, {per_seed * len(cfg.seeds) / 3600:.2f} h for {len(cfg.seeds)} seeds")


if __name__ == "__main__":
    main()
