"""``kdexplain assemble``: a run folder from networks trained elsewhere (docs/own-models.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _source(values: list[Path], what: str) -> Path | list[Path]:
    """One folder (a Recorder's) or a series of per-epoch state-dict files."""
    if len(values) == 1 and values[0].is_dir():
        return values[0]
    for v in values:
        if v.is_dir():
            raise ValueError(f"--{what} {v}: give one Recorder folder, or state-dict files only")
    return values


def register(app: typer.Typer) -> None:
    """Add the ``assemble`` command to ``app``."""

    @app.command("assemble")
    def assemble_cmd(
        out: Annotated[Path, typer.Argument(help="The run folder to create (absent or empty).")],
        args: Annotated[list[str] | None, typer.Argument(
            metavar="[CONFIG] [KEY=VALUE]...",
            help="Experiment YAML for the data and analysis settings (or the name of one in "
                 "configs/; default: built-in defaults), then overrides key.sub=value, e.g. "
                 "model.kwargs={width: 4, hidden: 16}", show_default=False)] = None,
        teacher: Annotated[Path, typer.Option(
            help="The teacher: a weights file (state dict or kdexplain checkpoint) or a "
                 "Recorder folder.")] = ...,
        student: Annotated[list[Path], typer.Option(
            help="The student: a Recorder folder, or the state dicts of epochs 0..E "
                 "(repeat the option; the epoch is the last number in each file name).")] = ...,
        baseline: Annotated[list[Path], typer.Option(
            help="The baseline, as --student.")] = ...,
        num_classes: Annotated[int, typer.Option(help="Head size of T, S and B.")] = ...,
        arch: Annotated[str | None, typer.Option(
            help="Architecture of T, S and B (default: the config's model.arch).")] = None,
        layer: Annotated[str | None, typer.Option(
            help="Analysed layer (default: the config's model.layer).")] = None,
        seed: Annotated[int | None, typer.Option(
            help="The seed S and B were trained with (default: the config's).")] = None,
    ) -> None:
        """Build a run folder that `kdexplain sweep` and `kdexplain report` read as a
        kdexplain-trained run, from a teacher file and, for S and B, Recorder folders or
        per-epoch state dicts (then only the per-epoch distance form exists)."""
        from kdexplain.cli import config_and_overrides

        items = list(args or [])
        config = None
        if items and "=" not in items[0]:
            config, overrides = config_and_overrides(items)
        else:
            overrides = items
        from kdexplain.record import assemble_run

        path = assemble_run(out, teacher=teacher, student=_source(student, "student"),
                            baseline=_source(baseline, "baseline"), num_classes=num_classes,
                            arch=arch, layer=layer, seed=seed, config=config,
                            overrides=overrides)
        typer.echo(f"run folder: {path} (next: kdexplain sweep {path})")
