"""What the reliability tests share: the tiny config cut to seconds, the one-line error
check, and a finished tiny run to copy and mutate."""

from __future__ import annotations

import shutil
from pathlib import Path

from kdexplain.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
#: The tiny config cut to a few seconds of training (T: 1 epoch, S: 1 + 1, B: 1).
FAST = ["teacher.pretrain_epochs=0", "teacher.epochs=1", "baseline.epochs=1",
        "student.phase1_epochs=1", "student.phase2_epochs=1", "checkpoints=[0,1]",
        "analysis.n_images=4", "analysis.steps=6", "analysis.samples=4"]


def one_error_line(capsys) -> str:
    """The last line of stderr, which must be ``error: ...``, with no traceback."""
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err, err
    return lines[-1]


def finished_run(tmp_path_factory) -> Path:
    """A tiny run trained, swept and reported by ``kdexplain run`` (copy it to mutate it)."""
    base = tmp_path_factory.mktemp("finished")
    rc = main(["run", str(TINY), f"out_dir={base}", "name=done", *FAST,
               "--report-dir", str(base / "report")])
    assert rc == 0
    return base / "done"


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of ``run`` under ``tmp_path`` (without its lock file)."""
    dst = tmp_path / "copy"
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(".kdexplain.lock"))
    return dst
