"""``kdexplain report``: concept metrics, hypothesis tests and figures of swept runs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


def expand_run_dirs(paths: list[Path]) -> list[Path]:
    """Run directories: each path itself, or its ``seed_*`` sub-folders (multi-seed runs)."""
    out: list[Path] = []
    for p in paths:
        if (p / "config.yaml").is_file():
            out.append(p)
            continue
        seeds = sorted(d for d in p.glob("seed_*") if (d / "config.yaml").is_file())
        if not seeds:
            raise FileNotFoundError(
                f"{p} is not a run directory: expected {p / 'config.yaml'} (one run) or "
                f"{p}/seed_<s>/config.yaml (a multi-seed experiment)")
        out += seeds
    return out


def report_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories with finished sweeps (or a multi-seed experiment folder).")],
    out: Annotated[Optional[Path], typer.Option(help="Report folder (default reports/<name>).")] = None,
    title: Annotated[Optional[str], typer.Option(help="Title of index.md.")] = None,
) -> None:
    """Write reports/<name>/: concept_metrics and hypotheses tables (csv, md, tex), figures
    and an index.md to read top to bottom."""
    from kdexplain.config import load_config

    dirs = expand_run_dirs(run_dirs)  # mistakes are reported before the heavy imports
    cfg = load_config(dirs[0] / "config.yaml")
    from kdexplain.pipeline import make_report

    out = out or Path("reports") / cfg.name
    cmd = "kdexplain report " + " ".join(shlex.quote(str(d)) for d in run_dirs) + f" --out {out}"
    path = make_report(dirs, out, title=title, command=cmd)
    typer.echo(f"report: {path / 'index.md'}")
