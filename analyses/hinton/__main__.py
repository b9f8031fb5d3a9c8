"""``python -m analyses.hinton <analysis|all> [--quick | --protocol paper] ...``.

See ``analyses/hinton/README.md``.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
import typer

from analyses.hinton import ANALYSES, make_config, render_only, run_analyses
from analyses.hinton.config import PROTOCOLS, default_teacher, teacher_preset, with_epochs
from analyses.hinton.workspace import DEFAULT_CACHE_DIR, log
from kdexplain.cli import run_app
from kdexplain.data.digits import dataset_key

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

#: The arguments of the running command, for the pages (set by :func:`cli`).
_argv: list[str] = []

#: Large data sets are subsampled by default so a full run stays within minutes.
LARGE_TRAIN_SIZE = {"full": 10000, "quick": 4000}


@app.command()
def main(
    analysis: str = typer.Argument(..., help=f"one of: {', '.join(ANALYSES)}, all; or a "
                                   "comma-separated list"),
    quick: bool = typer.Option(False, "--quick", help="two seeds, few epochs (~1-2 min each)"),
    protocol: Optional[str] = typer.Option(None, help="preset: full (default), quick (= "
                                           "--quick) or paper (the paper's protocol at full "
                                           "size: all 60 000 training images of --dataset "
                                           "fashion or mnist, 5 seeds; about 60 min of one "
                                           "core for distillation,missing-class)"),
    dataset: str = typer.Option("mnist5k", help="mnist5k (offline), fashion (Debian's "
                                "dataset-fashion-mnist), mnist (torchvision), sklearn-digits"),
    root: Optional[Path] = typer.Option(None, help="data root for fashion / mnist"),
    download: bool = typer.Option(False, help="download torchvision MNIST into --root"),
    teacher: Optional[str] = typer.Option(None, help="teacher preset: paper (dropout 0.2 / "
                                          "0.5, 2-pixel jitter; full mode's default) or light "
                                          "(0.1 / 0.3, 1 pixel; quick mode's default) or "
                                          "nojitter (0.1 / 0.3, no jitter)"),
    seeds: Optional[str] = typer.Option(None, help="comma-separated seeds, e.g. 0,1,2 "
                                        "(default: 0,1,2,3,4 full, 0,1 quick)"),
    train_size: Optional[int] = typer.Option(None, help="stratified training subset (default: "
                                             "all of mnist5k / sklearn-digits, 10000 of the "
                                             "large sets, 4000 with --quick)"),
    test_size: Optional[int] = typer.Option(None, help="stratified test subset (default all)"),
    epochs: Optional[int] = typer.Option(None, help="train every net for this many epochs "
                                         "(a smoke test of a protocol)"),
    holdout_per_class: Optional[int] = typer.Option(None, help="training images per class "
                                                    "held out of the missing-class transfer "
                                                    "sets for the label-free bias rules "
                                                    "(default 40; 100 with --protocol paper)"),
    consistent_teachers: Optional[str] = typer.Option(
        None, help="comma-separated teacher presets of the consistent analysis (default: "
        "paper,light)"),
    consistent_jitter: Optional[int] = typer.Option(
        None, help="largest shift (pixels) of the view the consistent teacher labels "
        "(default: each teacher's own jitter)"),
    out: Optional[Path] = typer.Option(None, help="output folder (default reports/hinton, "
                                       "runs/hinton/quick with --quick; sub-folders per "
                                       "data set other than mnist5k, <dataset>-paper for "
                                       "--protocol paper, and per non-default teacher)"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE_DIR, help="cache of trained runs"),
    no_cache: bool = typer.Option(False, "--no-cache", help="train everything again, keep "
                                  "runs in memory only"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads (default: torch's "
                                          "choice, e.g. OMP_NUM_THREADS)"),
    render: bool = typer.Option(False, "--render-only", help="rebuild pages and plots from "
                                "the JSON results in --out, train nothing"),
) -> None:
    """Reproduce Hinton et al.'s distillation findings; write Markdown pages and plots."""
    names = list(ANALYSES) if analysis == "all" else [a.strip() for a in analysis.split(",")]
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"unknown --protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if quick and protocol not in (None, "quick"):
        raise ValueError(f"--quick and --protocol {protocol} contradict each other; give one")
    mode = protocol or ("quick" if quick else "full")
    quick = mode == "quick"
    key = dataset_key(dataset)
    small = key in ("mnist5k", "sklearn-digits")
    # the paper protocol's own teacher unless --teacher names another one
    teacher_name = teacher or ("paper" if mode == "paper" else default_teacher(quick))
    if out is None:
        out = default_out(mode, key, teacher_name)
    if render:
        for p in render_only(names, out):
            log(f"wrote {p}")
        return
    if threads is not None:
        torch.set_num_threads(threads)
    seed_list = None
    if seeds is not None:
        try:
            seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
        except ValueError as e:
            raise ValueError(f"--seeds must be comma-separated integers, got {seeds!r}") from e
    if train_size is None and not small and mode != "paper":
        train_size = LARGE_TRAIN_SIZE[mode]
    cfg = make_config(protocol=mode, dataset=key, seeds=seed_list, train_size=train_size,
                      test_size=test_size, holdout_per_class=holdout_per_class,
                      consistent_jitter=consistent_jitter,
                      consistent_teachers=None if consistent_teachers is None else tuple(
                          n.strip() for n in consistent_teachers.split(",") if n.strip()))
    if teacher is not None:
        # a named teacher's regularisation, with the protocol's number of epochs
        preset = teacher_preset(teacher, quick)
        cfg = replace(cfg, teacher=replace(preset, epochs=cfg.teacher.epochs)
                      if mode == "paper" else preset)
    elif mode != "paper":
        cfg = replace(cfg, teacher=teacher_preset(teacher_name, quick))
    if epochs is not None:
        cfg = with_epochs(cfg, epochs)
    t0 = time.perf_counter()
    run_analyses(names, cfg, out, root=root, download=download,
                 cache_dir=None if no_cache else cache_dir,
                 command=page_command(_argv))
    log(f"all done in {time.perf_counter() - t0:.0f} s; pages in {out}/ (index.md)")


def default_out(mode: str, key: str, teacher_name: str) -> Path:
    """The output folder of a run: ``reports/hinton`` (``runs/hinton/quick`` in quick mode),
    a sub-folder per data set other than the small ones (``<dataset>-paper`` for the paper
    protocol), and ``teacher-<name>`` below it for a teacher other than the mode's own."""
    quick = mode == "quick"
    out = Path("reports/hinton") if not quick else Path("runs/hinton/quick")
    if mode == "paper":
        out = out / f"{key}-paper"
    elif key not in ("mnist5k", "sklearn-digits"):
        out = out / key
    if teacher_name != ("paper" if mode == "paper" else default_teacher(quick)):
        out = out / f"teacher-{teacher_name}"
    return out


#: Options that choose where runs are cached, not what they compute: left off the pages.
_MACHINE_ONLY = ("--cache-dir",)
#: Options whose value is a folder of the machine that ran the command.
_FOLDERS = ("--root", "--out")


def page_command(argv: list[str]) -> str:
    """The command as a page shows it: without the machine's folders.

    ``--cache-dir`` (where finished nets are kept; it changes no number) is left off, and
    an absolute ``--root`` or ``--out`` becomes ``DIR``, so a page says how to reproduce it
    anywhere and names no folder of the machine that made it.
    """
    shown, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        name, eq, value = arg.partition("=")
        if name in _MACHINE_ONLY:
            skip = not eq
            continue
        if name in _FOLDERS:
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
                skip = True
            shown += [name, "DIR" if Path(value).is_absolute() else value]
            continue
        shown.append(arg)
    return "python -m analyses.hinton " + shlex.join(shown)


def cli(argv: list[str] | None = None) -> int:
    """Run the command; predictable mistakes print one ``error:`` line and return 2."""
    global _argv
    _argv = list(sys.argv[1:] if argv is None else argv)
    return run_app(app, argv, prog_name="python -m analyses.hinton",
                   interrupted="interrupted: finished runs are cached; run the same command "
                               "again to resume")


if __name__ == "__main__":
    sys.exit(cli())
