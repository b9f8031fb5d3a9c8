"""``kdexplain run`` (the whole pipeline) and ``kdexplain sweep`` (quantify a trained run)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("sweep")(sweep_command)


def run_command(
    args: Annotated[Optional[list[str]], typer.Argument(
        metavar="[CONFIG] [KEY=VALUE]...",
        help="Experiment YAML, or a shipped config's name (`kdexplain configs`; default "
             "quickstart), then config overrides key.sub=value.", show_default=False)] = None,
    report_dir: Annotated[Optional[Path], typer.Option(help="Report folder (default reports/<name>).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (default: the config's).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate everything (data root, layer, images, checkpoints, grid, folders) without writing, print the training epochs and quantification units, and estimate the time from a short timed probe on this machine (and on the GPU where CUDA is present).")] = False,
) -> None:
    """Build the data, train the triplet, quantify every checkpoint, write the report.

    Each stage resumes where an interrupted run stopped: run the same command again.
    `kdexplain configs` lists the shipped configs; `--dry-run` says what a config costs.
    """
    from kdexplain.cli import config_and_overrides
    from kdexplain.config import load_config

    config, overrides = config_and_overrides(list(args or []))
    cfg = load_config(config, overrides)  # a bad config is reported before the heavy imports
    if dry_run:
        from kdexplain.pipeline.plan import format_plan, plan_experiment

        typer.echo(format_plan(plan_experiment(cfg, report_dir=report_dir, device=device)))
        return
    from kdexplain.cli import log_to_stderr
    from kdexplain.pipeline import run_experiment

    log_to_stderr()
    cmd = "kdexplain run " + " ".join(shlex.quote(a) for a in [str(config), *(overrides or [])])
    out = run_experiment(config, overrides or [], report_dir=report_dir, device=device,
                         show_progress=None, command=cmd)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"report: {out / 'index.md'}")


def sweep_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by train-triplet (one seed).")],
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (default: the config's).")] = None,
    checkpoints_per_call: Annotated[int, typer.Option(help="Checkpoints batched into one engine call.")] = 4,
) -> None:
    """Quantify every (model, checkpoint, image) of a run at its analysed layer.

    Resumable (finished checkpoints are skipped) and shardable:
    `torchrun --nproc_per_node N -m kdexplain.cli sweep RUN_DIR`.
    """
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir / 'config.yaml'} does not exist: give a run directory "
                                "written by `kdexplain train-triplet` (with seeds: RUN/seed_<s>)")
    from kdexplain.pipeline import sweep

    out = sweep(run_dir, device=device, checkpoints_per_call=checkpoints_per_call,
                show_progress=None)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"sweep: {out}")
