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


def report_overrides(settings: list[str]) -> list[str]:
    """``key=value`` report settings -> config overrides ``analysis.key=value``."""
    from kdexplain.config import CONCEPT_KEYS

    out = []
    for item in settings:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("analysis.")
        if not sep or not key:
            raise ValueError(f"--set expects key=value (e.g. --set alpha=0.01), got {item!r}")
        if key not in CONCEPT_KEYS:
            raise ValueError(f"--set {key}: not a setting of the report; the report's settings "
                             f"are {', '.join(CONCEPT_KEYS)} (the others shape the sweep: change "
                             "them in the config and sweep again)")
        out.append(f"analysis.{key}={value}")
    return out


def report_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories with finished sweeps (or a multi-seed experiment folder).")],
    out: Annotated[Optional[Path], typer.Option(help="Report folder (default reports/<name>).")] = None,
    title: Annotated[Optional[str], typer.Option(help="Title of index.md.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="A concept/statistics setting of the config's analysis section, "
                      "key=value (repeatable), e.g. --set alpha=0.01 --set distance=epoch "
                      "--set concept_threshold=0.3.", show_default=False)] = None,
) -> None:
    """Write reports/<name>/: concept_metrics and hypotheses tables (csv, md, tex), figures
    and an index.md to read top to bottom."""
    from kdexplain.config import load_config

    dirs = expand_run_dirs(run_dirs)  # mistakes are reported before the heavy imports
    cfg = load_config(dirs[0] / "config.yaml", report_overrides(settings or []))
    from kdexplain.pipeline import make_report

    out = out or Path("reports") / cfg.name
    cmd = ("kdexplain report " + " ".join(shlex.quote(str(d)) for d in run_dirs) + f" --out {out}"
           + "".join(f" --set {shlex.quote(s)}" for s in settings or []))
    path = make_report(dirs, out, title=title, config=cfg, command=cmd)
    typer.echo(f"report: {path / 'index.md'}")
