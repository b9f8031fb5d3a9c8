"""``kdexplain calibrate``: the default preset's concept threshold against the reference."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_command)


def calibrate_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories with finished sweeps (or a multi-seed experiment folder).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder for calibration.json and calibration.md (default reports/<name>/calibration; for a study's variant give reports/<study>/<variant>/calibration, and the study's index.md shows it).")] = None,
    n_images: Annotated[int, typer.Option(help="Per model: the first N of the images its report uses.")] = 8,
    checkpoints: Annotated[str, typer.Option(help="last (each model's last checkpoint) or all.")] = "last",
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (default: the config's).")] = None,
) -> None:
    """Run the reference preset (the original optimisation, for which b = 0.2 was set) on a
    subset of a finished sweep: the threshold b' at which the default preset marks as many
    concepts, how well the two agree, and the hypotheses under each estimator (docs/method.md section 4):
    hypothesis 1 at the last checkpoints; all three with --checkpoints all.

    About 30x the sweep's cost per (image, checkpoint); resumable.
    """
    from kdexplain.cli.report import expand_run_dirs
    from kdexplain.config import load_config

    if n_images < 1:
        raise ValueError(f"--n-images must be at least 1, got {n_images}")
    if checkpoints not in ("last", "all"):
        raise ValueError(f"--checkpoints must be 'last' or 'all', got {checkpoints!r}")
    dirs = expand_run_dirs(run_dirs)
    cfg = load_config(dirs[0] / "config.yaml")
    from kdexplain.cli import log_to_stderr
    from kdexplain.pipeline.calibrate import calibrate_experiment

    log_to_stderr()
    out = out or Path("reports") / cfg.name / "calibration"
    cmd = ("kdexplain calibrate " + " ".join(shlex.quote(str(d)) for d in run_dirs)
           + f" --n-images {n_images} --checkpoints {checkpoints} --out {shlex.quote(str(out))}")
    result = calibrate_experiment(dirs, out, n_images=n_images, checkpoints=checkpoints,
                                  device=device, command=cmd)
    from kdexplain.pipeline.study_index import refresh_study_index

    index = refresh_study_index(out)
    c = result["calibration"]
    typer.echo(f"b' = {c['calibrated_threshold']:.3g} for b = {c['reference_threshold']:.3g} "
               f"(agreement {c['agreement_uncalibrated']:.2f} -> {c['agreement_calibrated']:.2f}); "
               f"{out / 'calibration.md'}" + (f"; updated {index}" if index else ""))
