"""``kdexplain train-triplet``: train teacher, baseline and distilled student of one config."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``train-triplet`` command to ``app``."""

    @app.command("train-triplet")
    def train_triplet_cmd(
        args: Annotated[list[str] | None, typer.Argument(
            metavar="[CONFIG] [KEY=VALUE]...",
            help="Experiment YAML, or a shipped config's name (`kdexplain configs`; default "
                 "quickstart), then config overrides key.sub=value (YAML values), "
                 "e.g. optim.lr=0.02 student.mode=soft checkpoints=[0,1,2]",
            show_default=False)] = None,
        run_dir: Annotated[Path | None, typer.Option(
            "--run-dir", help="Run directory (default: out_dir/name from the config).")] = None,
        resume: Annotated[bool, typer.Option(
            "--resume", help="Continue an interrupted run from each model's newest state.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-epoch log lines.")] = False,
    ) -> None:
        """Train the triplet (teacher, baseline, student; docs/method.md section 2) into a run
        directory.

        Same form as `kdexplain run`: `kdexplain train-triplet configs/quickstart.yaml
        optim.lr=0.02 name=lr2`. Under `torchrun --nproc_per_node N -m kdexplain.cli
        train-triplet CONFIG ...` the N processes
        train with DDP (gloo on CPU, nccl on CUDA); only rank 0 writes and prints.
        """
        from kdexplain.cli import config_and_overrides
        from kdexplain.config import load_config

        config, overrides = config_and_overrides(list(args or []))
        cfg = load_config(config, overrides)  # mistakes before the heavy imports
        from tqdm.contrib.logging import logging_redirect_tqdm

        from kdexplain.train import format_summary, train_all_seeds
        from kdexplain.utils import read_json

        rank = int(os.environ.get("RANK", "0"))
        logger = logging.getLogger("kdexplain.train")
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(logging.WARNING if (quiet or rank != 0) else logging.INFO)

        with logging_redirect_tqdm(loggers=[logger]):  # log lines above the progress bars
            dirs = train_all_seeds(cfg, run_dir, resume=resume)
        if rank == 0:
            for d in dirs:
                typer.echo(format_summary(read_json(d / "summary.json")))
                typer.echo(f"run directory: {d}")
