"""Make the teacher weights that ship with kdexplain (:mod:`kdexplain.weights`).

The built-in test bed's teacher knows its task because it was pre-trained on many more
generated images than the target task holds (as ImageNet is for the paper's teachers). The
pre-training takes longer than the quickstart may, so its result ships as a generated
artefact, made by the package's own training code::

    python -m kdexplain.train.shipped make configs/scenes_teacher.yaml \
        --out kdexplain/weights/scenes_kdnet16

trains the teacher of the config (only its pre-training on ``data.source`` matters;
``teacher.epochs`` may be 0) with :func:`~kdexplain.train.triplet.train_teacher` into a run
folder, then :func:`export_teacher` writes ``<out>.pt`` (the pre-trained state dict, plain
tensors: it loads with ``torch.load(..., weights_only=True)``) and ``<out>.json`` (the
command, the resolved config, the sha256 of the ``.pt`` file, the accuracies of every epoch
and the training seconds). A finished run folder is not retrained, only exported again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kdexplain.config import load_config, read_yaml
from kdexplain.models import load_state_dict
from kdexplain.train.checkpoints import list_checkpoints
from kdexplain.train.triplet import train_teacher
from kdexplain.utils import read_json, write_json
from kdexplain.weights import sha256_of

__all__ = ["export_teacher", "main", "make_teacher"]


def export_teacher(run_dir: str | Path, out: str | Path, command: str) -> Path:
    """Write the pre-trained teacher of a teacher-only run as ``<out>.pt`` + ``<out>.json``.

    Parameters
    ----------
    run_dir : path
        A finished :func:`~kdexplain.train.triplet.train_teacher` run with a pre-training.
    out : path
        The files' path without suffix.
    command : str
        The command that made the run (recorded, with the epochs' training seconds).

    Returns
    -------
    Path
        The ``.pt`` file.
    """
    run_dir, out = Path(run_dir), Path(out)
    kept = list_checkpoints(run_dir / "teacher", "pretrain")
    if not kept:
        raise FileNotFoundError(f"{run_dir}/teacher has no pre-training checkpoint: the config "
                                "needs teacher.pretrain_epochs > 0 and data.source")
    state = {k: v.detach().cpu().contiguous() for k, v in load_state_dict(kept[-1][1]).items()}
    pt = out.with_suffix(".pt")
    pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, pt)
    config = read_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"))
    metrics = pd.read_csv(run_dir / "teacher" / "metrics.csv")
    epochs = [{k: (None if pd.isna(v) else v) for k, v in row.items()}
              for row in metrics[["phase", "epoch", "train_acc", "val_acc", "val_loss",
                                  "seconds"]].to_dict("records")]
    pre = metrics[metrics["phase"] == "pretrain"]
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    record: dict[str, Any] = {
        "file": pt.name, "sha256": sha256_of(pt), "bytes": pt.stat().st_size,
        "arch": config["model"]["arch"], "model_kwargs": config["model"]["kwargs"],
        "num_classes": int(state[[k for k in state if k.endswith("weight")][-1]].shape[0]),
        "source": config["data"]["source"], "image_size": config["data"]["image_size"],
        "pretrain_epochs": int(config["teacher"]["pretrain_epochs"]),
        "source_val_acc": float(pre["val_acc"].iloc[-1]) if len(pre) else None,
        "command": command, "train_seconds": round(float(metrics["seconds"].sum()), 1),
        "config": config, "epochs": epochs,
        "environment": {k: summary.get(k) for k in ("device", "world_size")},
        "loading": "torch.load(path, weights_only=True): a plain state dict",
    }
    write_json(out.with_suffix(".json"), record)
    return pt


def make_teacher(config_path: str | Path, out: str | Path, run_dir: str | Path,
                 overrides: list[str] | None = None, command: str | None = None) -> Path:
    """Pre-train the teacher of a config into ``run_dir`` and export it (:func:`export_teacher`).

    A finished run in ``run_dir`` is not retrained (only exported again).
    """
    config = load_config(config_path, overrides or [])
    train_teacher(config, run_dir, resume=(Path(run_dir) / "teacher" / "last.pt").is_file())
    command = command or ("python -m kdexplain.train.shipped make "
                          + " ".join([str(config_path), "--out", str(out), *(overrides or [])]))
    return export_teacher(run_dir, out, command)


def main(argv: list[str] | None = None) -> int:
    """``python -m kdexplain.train.shipped make CONFIG --out PATH [key=value ...]`` or
    ``... export RUN_DIR --out PATH --command TEXT``."""
    p = argparse.ArgumentParser(prog="python -m kdexplain.train.shipped",
                                description="make the teacher weights that ship with kdexplain")
    sub = p.add_subparsers(dest="what", required=True)
    mk = sub.add_parser("make", help="pre-train a config's teacher and export it")
    mk.add_argument("config")
    mk.add_argument("overrides", nargs="*", help="key=value config overrides")
    mk.add_argument("--out", required=True, help="output path without suffix")
    mk.add_argument("--run-dir", default=None, help="default: runs/shipped/<out's name>")
    ex = sub.add_parser("export", help="export the teacher of a finished run")
    ex.add_argument("run_dir")
    ex.add_argument("--out", required=True)
    ex.add_argument("--command", required=True, help="the command that made the run")
    a = p.parse_args(argv)
    if a.what == "make":
        run_dir = a.run_dir or str(Path("runs") / "shipped" / Path(a.out).name)
        pt = make_teacher(a.config, a.out, run_dir, a.overrides)
    else:
        pt = export_teacher(a.run_dir, a.out, a.command)
    print(f"wrote {pt} and {pt.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
