"""``python -m analyses.spurious [--quick] ...``: see ``analyses/spurious/README.md``."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import typer

from analyses.spurious.config import make_config
from analyses.spurious.pipeline import log, run_validation
from analyses.spurious.render import render_report
from analyses.spurious.report import write_report

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as e:
        raise ValueError(f"{what} must be comma-separated integers, e.g. 0,1; got {text!r}") from e


@app.command()
def main(
    quick: bool = typer.Option(False, "--quick", help="fewer images and epochs (~1-2 min); "
                               "a smoke test, too short for the networks to learn the objects"),
    seeds: Optional[str] = typer.Option(None, help="training seeds, e.g. 0,1,2 (default 0-7; fewer than 7 can give no verdict)"),
    layers: Optional[str] = typer.Option(None, help="layers to quantify, e.g. fc1,conv "
                                         "(default fc1)"),
    p: Optional[float] = typer.Option(None, "--p", help="spurious_background of the spurious "
                                      "network (default 0.9)"),
    n_images: Optional[int] = typer.Option(None, help="analysed images per set (tied, neutral)"),
    epochs: Optional[int] = typer.Option(None, help="training epochs of each network"),
    analysed_epochs: Optional[str] = typer.Option(
        None, help="checkpoints to quantify, e.g. 0,2,5,10 (default: 0 and the last)"),
    samples: Optional[int] = typer.Option(None, help="noise samples per quantification step "
                                          "(default 8)"),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (default auto)"),
    out: Optional[Path] = typer.Option(None, help="report folder (default reports/spurious, "
                                       "runs/spurious/quick/report with --quick)"),
    work_dir: Optional[Path] = typer.Option(None, help="trained runs and quantification cache "
                                            "(default runs/spurious/<mode>)"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's "
                                          "choice, e.g. OMP_NUM_THREADS)"),
    render_only: bool = typer.Option(False, "--render-only", help="rebuild index.md, "
                                     "comparison.csv and within_run.csv from the tables in "
                                     "--out, train and quantify nothing"),
) -> None:
    """Train a network with and without the background tied to the class, count its
    visual concepts on the same images, and report whether the measure sees the reliance."""
    command = "python -m analyses.spurious" + "".join(
        " " + shlex.quote(a) for a in sys.argv[1:])
    if render_only:
        given = [name for name, v in (("--seeds", seeds), ("--layers", layers), ("--p", p),
                                      ("--n-images", n_images), ("--epochs", epochs),
                                      ("--analysed-epochs", analysed_epochs),
                                      ("--samples", samples), ("--device", device),
                                      ("--work-dir", work_dir)) if v is not None]
        if given:
            raise ValueError(f"--render-only rebuilds a report from its saved tables and "
                             f"settings; drop {', '.join(given)}")
        out = out or (Path("reports/spurious") if not quick else Path("runs/spurious/quick/report"))
        log(f"report rebuilt: {render_report(out, command=command)}")
        return
    overrides: dict = {}
    if seeds is not None:
        overrides["seeds"] = _ints(seeds, "--seeds")
    if layers is not None:
        overrides["layers"] = tuple(s.strip() for s in layers.split(",") if s.strip())
    if p is not None:
        overrides["spurious_background"] = p
    if n_images is not None:
        overrides["images_per_set"] = n_images
    if epochs is not None:
        overrides["epochs"] = epochs
        overrides["checkpoints"] = tuple(sorted({0, epochs // 5, epochs // 2, epochs}))
    if analysed_epochs is not None:
        overrides["analysed_epochs"] = _ints(analysed_epochs, "--analysed-epochs")
    if samples is not None:
        overrides["samples"] = samples
    if device is not None:
        overrides["device"] = device
    cfg = make_config(quick=quick, **overrides)
    if threads is not None:
        torch.set_num_threads(threads)
    mode = cfg.mode
    out = out or (Path("reports/spurious") if not quick else Path("runs/spurious/quick/report"))
    work_dir = work_dir or Path("runs/spurious") / mode
    t0 = time.perf_counter()
    results = run_validation(cfg, work_dir)
    index = write_report(results, out, command=command)
    log(f"done in {time.perf_counter() - t0:.0f} s; report: {index}")


def cli(argv: list[str] | None = None) -> int:
    """Entry point; predictable mistakes print one ``error:`` line and exit with status 2."""
    try:
        app(args=argv, prog_name="python -m analyses.spurious")
    except SystemExit as e:  # typer's normal exit (help, usage errors, success)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except (ValueError, FileNotFoundError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        typer.secho("interrupted: finished trainings and quantifications are kept in the work "
                    "folder; run the same command again to resume", fg=typer.colors.YELLOW,
                    err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
