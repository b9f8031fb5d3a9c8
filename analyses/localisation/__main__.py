"""``python -m analyses.localisation [--quick] [--run RUN_DIR ...]``: see README.md here."""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch
import typer

from analyses.localisation.methods import MethodSettings
from analyses.localisation.pipeline import (
    log,
    quickstart_networks,
    quickstart_run_dirs,
    score_networks,
    spurious_networks,
)
from analyses.localisation.report import write_report

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    run: Optional[list[Path]] = typer.Option(
        None, "--run", help="a finished quickstart run folder; repeat it for several seeds "
        "(default runs/quickstart)"),
    quick: bool = typer.Option(False, "--quick", help="2 images, short optimisation, no "
                               "spurious networks: a smoke test (< 1 min)"),
    n_images: Optional[int] = typer.Option(None, help="quickstart images per run (default 8)"),
    spurious_dir: Path = typer.Option(Path("runs/spurious/default"), help="trained networks "
                                      "of analyses.spurious (trained there when missing)"),
    n_spurious_images: Optional[int] = typer.Option(None, help="images per spurious set "
                                                  "(default 5)"),
    out: Optional[Path] = typer.Option(None, help="report folder (default reports/localisation, "
                                       "runs/localisation/quick with --quick)"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads"),
) -> None:
    """Score the perturbation-entropy maps and four Captum attributions with Quantus's
    localisation metrics on exact object masks."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    runs = run or [Path("runs/quickstart")]
    # the default: the engine's default preset (250 sample-passes per image, within 5 % of
    # the optimum, reports/performance.md); quick: a shorter optimisation for a smoke test
    # Occlusion slides its 8-pixel patch by 4 pixels (overlapping patches); with a stride of
    # 8 it would be FeatureAblation on the same 8 x 8 grid of cells, the same map twice.
    settings = (MethodSettings(samples=4, steps=20, ig_steps=8) if quick else
                MethodSettings())
    n_images = n_images or (2 if quick else 8)
    out = out or (Path("runs/localisation/quick") if quick else Path("reports/localisation"))
    command = "python -m analyses.localisation" + "".join(" " + shlex.quote(a)
                                                           for a in sys.argv[1:])
    t0 = time.perf_counter()
    seen: set[Path] = set()  # a shared teacher is analysed once
    networks = [n for r in quickstart_run_dirs(runs) for n in quickstart_networks(r, n_images, seen)]
    notes = []
    if quick:
        notes.append("--quick: the spurious-background networks are left out")
    else:
        networks += spurious_networks(spurious_dir, quick=False,
                                      n_images=n_spurious_images or 5, train=True)
    per_image, cost, kept = score_networks(networks, settings)
    images_by_set = {}
    for net in networks:
        for name, data in net.sets.items():
            images_by_set.setdefault(name, data)
    index = write_report(per_image, cost, kept, images_by_set, out, command=command,
                         wall_s=time.perf_counter() - t0,
                         settings={**asdict(settings), "images": n_images,
                                   "runs": ",".join(str(r) for r in runs)}, notes=notes)
    log(f"done in {time.perf_counter() - t0:.0f} s; report: {index}")


def cli(argv: list[str] | None = None) -> int:
    """Entry point; predictable mistakes print one ``error:`` line and exit with status 2."""
    try:
        app(args=argv, prog_name="python -m analyses.localisation")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except (ValueError, FileNotFoundError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        typer.secho("interrupted: nothing was written", fg=typer.colors.YELLOW, err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
