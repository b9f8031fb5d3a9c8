"""The run folder: whether it may be (re)used, what is written before and after training
(``config.yaml``, ``environment.json``, ``summary.json``) and a readable summary."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from kdexplain.config import (
    ConfigError,
    ExperimentConfig,
    dump_config,
    flatten_config,
    key_under,
    parse_config,
    read_yaml,
)
from kdexplain.train.distributed import DistContext
from kdexplain.train.loop import ModelTrainer
from kdexplain.train.setup import RunSetup
from kdexplain.utils import (
    atomic_write_text,
    environment_info,
    read_json,
    remove_stale_temporaries,
    seed_everything,
    write_json,
)
from kdexplain.utils.render import text_table
from kdexplain.vocabulary import ALL_ROLES

__all__ = ["finish_run", "format_summary", "model_summary", "start_run", "summary_head",
           "write_run_info"]

log = logging.getLogger("kdexplain.train")


#: Config keys that may change between an interrupted run and its resumption.
_RESUME_FREE = ("name", "out_dir", "device", "seeds", "analysis", "optim.num_workers",
                "optim.eval_batch_size")


def _config_changes(old: dict, new: dict, free: tuple[str, ...] = ()) -> list[str]:
    a, b = flatten_config(old), flatten_config(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not key_under(k, _RESUME_FREE + free)]


def start_run(config: ExperimentConfig, run_dir: Path, resume: bool, ctx: DistContext,
           free: tuple[str, ...] = ()) -> bool:
    """Check whether ``run_dir`` may be (re)used, then seed; returns whether it holds
    finished work (a model's ``last.pt``) to continue.

    A folder with finished work needs ``resume`` and the same config; a folder without (only
    the ``config.yaml`` of a command that failed before its first epoch) is simply reused.
    Nothing is written here: :func:`write_run_info` does that once everything is validated.
    """
    cfg_path = run_dir / "config.yaml"
    started = any((run_dir / r / "last.pt").is_file() for r in ALL_ROLES)
    if started and not resume:
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or "
                         "choose another name (name=... or --run-dir)")
    if started and cfg_path.is_file():
        # through the current schema, so keys added since then compare as their defaults
        old = parse_config(read_yaml(cfg_path.read_text(encoding="utf-8"), str(cfg_path)),
                           str(cfg_path))
        changes = _config_changes(old.model_dump(mode="json"), config.model_dump(mode="json"),
                                  free)
        if changes:
            raise ConfigError(f"cannot resume {run_dir} with a different config; changed: "
                              + "; ".join(changes))
    seed_everything(config.seed)
    return started


def write_run_info(config: ExperimentConfig, run_dir: Path, started: bool,
                    ctx: DistContext) -> None:
    """``config.yaml`` and ``environment.json`` (appended to when the run resumes), written
    by rank 0 once every process has validated the config."""
    ctx.barrier()
    if not ctx.is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    for p in remove_stale_temporaries(run_dir):
        log.info("removed %s, left by an interrupted save", p)
    atomic_write_text(run_dir / "config.yaml", dump_config(config))
    env = environment_info()
    env["world_size"] = ctx.world_size
    env["device"] = str(ctx.device)
    env_path = run_dir / "environment.json"
    if started and env_path.is_file():
        first = read_json(env_path)
        first.setdefault("resumed", []).append(env)
        env = first
    write_json(env_path, env)


def summary_head(config: ExperimentConfig, run_dir: Path, ctx: DistContext, s: RunSetup
                  ) -> dict[str, Any]:
    m = config.model
    return {"run_dir": str(run_dir), "name": config.name, "seed": config.seed,
            "world_size": ctx.world_size, "device": str(ctx.device), "layer": s.layer,
            "arch": m.arch, "num_classes": s.num_classes, "models": {}}


def finish_run(summary: dict[str, Any], run_dir: Path, ctx: DistContext, t_start: float) -> None:
    summary["ranks_identical"] = all(v.get("ranks_identical") is not False
                                     for v in summary["models"].values())
    summary["seconds_this_session"] = time.perf_counter() - t_start
    if ctx.is_main:
        write_json(run_dir / "summary.json", summary)
    ctx.barrier()


def model_summary(trainer: ModelTrainer) -> dict[str, Any]:
    from kdexplain.train.checkpoints import list_checkpoints

    d = trainer.dir
    final = trainer.history[-1] if trainer.history else {}
    out: dict[str, Any] = {
        "final_val_acc": final.get("val_acc"),
        "final_val_loss": final.get("val_loss"),
        "phases": trainer.history,
        "ranks_identical": trainer.ranks_identical,
        "last": str(d / "last.pt"),
    }
    if trainer.ctx.is_main:
        out["checkpoints"] = [str(p) for _, p in list_checkpoints(d)]
        for p in trainer.phases:
            if p.subdir:
                out[f"checkpoints_{p.subdir}"] = [str(q) for _, q in list_checkpoints(d, p.subdir)]
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """A readable table of a run's ``summary.json``: one row per model and phase."""
    import pandas as pd  # only here: importing the training loop does not load pandas

    rows = []
    for role in ALL_ROLES:
        info = summary.get("models", {}).get(role)
        if not info:
            continue
        for ph in info.get("phases", []):
            acc = ph.get("val_acc")
            loss = ph.get("val_loss")
            ips = ph.get("images_per_second")
            rows.append([role, ph["phase"], ph["epochs"],
                         "-" if acc is None else f"{100 * acc:.1f}%",
                         "-" if loss is None else f"{loss:.4g}",
                         "-" if ips is None else f"{ips:,.0f}",
                         f"{ph.get('seconds', 0.0):.1f}"])
    head = ["model", "phase", "epochs", "val acc", "val loss", "train img/s", "seconds"]
    text = text_table(pd.DataFrame(rows, columns=head), "llrrrrr")
    return f"run {summary.get('run_dir')} (layer {summary.get('layer')}, seed {summary.get('seed')}, " \
           f"{summary.get('world_size')} process(es) on {summary.get('device')})\n{text}"
