"""Training throughput per phase of the triplet (images per second).

Trains a small triplet with the real training code (``kdexplain.train.train_triplet``) on
synthetic images held in memory, so the figures measure the training step (forward,
backward, optimiser, trajectory bookkeeping), not image decoding, and prints one row per
phase: the teacher's fine-tuning, the baseline, the student's phase 1 (feature
distillation: the student up to L, plus the teacher's forward up to L) and phase 2 (the
layers above L). Evaluation passes are not counted.

Examples::

    OMP_NUM_THREADS=2 python benchmarks/bench_train.py                     # kdnet, 64 px, CPU
    python benchmarks/bench_train.py --device cuda --arch vgg16 --image-size 224 \\
        --batch-size 64 --images 2048 --amp --channels-last
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from kdexplain.config import parse_config
from kdexplain.data import register_dataset
from kdexplain.train import train_triplet

PHASES = [("teacher", "finetune"), ("baseline", "train"), ("student", "phase1"),
          ("student", "phase2")]


class SyntheticImages(Dataset):
    """Random normalised images with labels, generated once (items as kdexplain.data's)."""

    def __init__(self, split: str = "train", root=None, image_size: int = 64, *,
                 images: int = 512, classes: int = 10, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
        n = images if split == "train" else max(classes, images // 8)
        self.labels = torch.randint(0, classes, (n,), generator=g)
        self.images = torch.randn(n, 3, image_size, image_size, generator=g)
        self.class_names = [f"c{i}" for i in range(classes)]
        self.num_classes = classes
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        s = self.image_size
        return {"image": self.images[i], "label": int(self.labels[i]),
                "mask": torch.ones(s, s, dtype=torch.bool), "box": torch.tensor([0.0, 0, s, s]),
                "index": i, "key": f"synthetic/{i}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="kdnet")
    ap.add_argument("--layer", default="conv")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--images", type=int, default=512, help="training images per epoch")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per phase (first one included)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()

    register_dataset("bench-synthetic", SyntheticImages)
    opts = {"images": args.images, "classes": args.classes}
    kwargs = {"width": 16, "hidden": 256} if args.arch == "kdnet" else {}
    cfg = parse_config({
        "name": "bench", "device": args.device,
        "data": {"name": "bench-synthetic", "image_size": args.image_size, "options": opts},
        "model": {"arch": args.arch, "kwargs": kwargs, "layer": args.layer},
        "teacher": {"epochs": args.epochs},
        "baseline": {"epochs": args.epochs},
        "student": {"mode": "feature", "phase1_epochs": args.epochs, "phase2_epochs": args.epochs},
        "optim": {"name": "sgd", "lr": 1e-3, "batch_size": args.batch_size, "amp": args.amp,
                  "channels_last": args.channels_last, "schedule": "constant"},
        "checkpoints": [0],
    }, "benchmark")
    os.environ.setdefault("KDEXPLAIN_PROGRESS", "0")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = train_triplet(cfg, Path(tmp) / "bench")
        wall = time.perf_counter() - t0
        summary = json.loads((run / "summary.json").read_text())
    device = summary["device"]
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name(0)})"
    rows = []
    for role, phase in PHASES:
        for ph in summary["models"][role]["phases"]:
            if ph["phase"] == phase:
                rows.append({"model": role, "phase": phase, "images": ph["train_images"],
                             "seconds": ph["train_seconds"],
                             "images_per_second": ph["images_per_second"]})
    print(f"kdexplain training throughput: {args.arch}, {args.image_size} px, batch "
          f"{args.batch_size}, layer {summary['layer']}, {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, amp={args.amp}, channels_last={args.channels_last}")
    print(f"{'model':<10}{'phase':<10}{'images':>8}{'seconds':>10}{'images/s':>11}")
    for r in rows:
        print(f"{r['model']:<10}{r['phase']:<10}{r['images']:>8}{r['seconds']:>10.2f}"
              f"{r['images_per_second']:>11.1f}")
    print(f"whole run (incl. evaluation, checkpoints, start-up): {wall:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "device": device, "machine": platform.platform(),
                                         "cpu_threads": torch.get_num_threads(),
                                         "torch": torch.__version__, "rows": rows,
                                         "wall_seconds": wall}, indent=2))


if __name__ == "__main__":
    main()
