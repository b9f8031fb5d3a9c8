"""The CSV records of one model of a run: ``metrics.csv``, ``trajectory.csv``,
``weight_distance.csv``.

Rows are appended at the end of each epoch (one ``write`` per epoch and file), before the
epoch's checkpoint. When a run resumes from an older ``last.pt`` (it was stopped after the
rows of a later epoch were written), :meth:`ModelRecords.truncate` drops the rows that
belong after the checkpoint, so a resumed run's files equal an uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

from kdexplain.utils import atomic_write_text

__all__ = ["METRICS_FIELDS", "ModelRecords"]

#: Columns of ``metrics.csv`` (one row per epoch and phase; epoch 0 = before training).
METRICS_FIELDS = ["epoch", "phase", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                  "seconds"]


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def _csv_text(fields: Sequence[str], rows: Sequence[dict], header: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(fields)
    for r in rows:
        w.writerow([_fmt(r.get(k)) for k in fields])
    return buf.getvalue()


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    if not lines:
        return [], []
    header, body = lines[0], lines[1:]
    return header, [r for r in body if len(r) == len(header)]  # a torn last line is dropped


class ModelRecords:
    """Writer of one model folder's CSV files (only the main process writes).

    Parameters
    ----------
    model_dir : Path
        ``RUN_DIR/<role>``.
    phases : list of str
        The model's phases in training order (to order ``metrics.csv`` rows on resume).
    """

    def __init__(self, model_dir: Path, phases: Sequence[str]) -> None:
        self.dir = Path(model_dir)
        self.phases = list(phases)
        self.metrics_path = self.dir / "metrics.csv"
        self.trajectory_path = self.dir / "trajectory.csv"
        self.distance_path = self.dir / "weight_distance.csv"

    @staticmethod
    def _append(path: Path, fields: Sequence[str], rows: Sequence[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.is_file() or path.stat().st_size == 0
        with path.open("a", newline="") as f:
            f.write(_csv_text(fields, rows, header=new))
            f.flush()

    def add_metrics(self, row: dict) -> None:
        """Append one epoch's row (keys :data:`METRICS_FIELDS`)."""
        self._append(self.metrics_path, METRICS_FIELDS, [row])

    def add_trajectory(self, fields: Sequence[str], rows: Sequence[dict]) -> None:
        """Append per-step rows of the tracked phase."""
        if rows:
            self._append(self.trajectory_path, fields, rows)

    def write_distances(self, fields: Sequence[str], rows: Sequence[dict]) -> None:
        """Rewrite ``weight_distance.csv`` (one row per kept checkpoint so far), atomically."""
        atomic_write_text(self.distance_path, _csv_text(fields, rows, header=True))

    def reset(self) -> None:
        """Remove the model's CSV files: it starts from scratch (no resume point exists)."""
        for p in (self.metrics_path, self.trajectory_path, self.distance_path):
            p.unlink(missing_ok=True)

    def truncate(self, phase: str, epoch: int, global_step: int, tracked_phase: str | None) -> None:
        """Drop rows written after the state (``phase``, ``epoch``, ``global_step``).

        ``tracked_phase`` is the phase whose trajectory is recorded; when the state lies
        before it, its trajectory has not begun and the file is removed.
        """
        order = {p: i for i, p in enumerate(self.phases)}
        here = (order[phase], epoch)
        header, rows = _read_rows(self.metrics_path)
        if header:
            ip, ie = header.index("phase"), header.index("epoch")
            keep = [r for r in rows if r[ip] in order and (order[r[ip]], int(r[ie])) <= here]
            atomic_write_text(self.metrics_path, _csv_text(header, [dict(zip(header, r, strict=True)) for r in keep], True))
        if tracked_phase is None:
            return
        if order[phase] < order[tracked_phase]:
            for p in (self.trajectory_path, self.distance_path):
                p.unlink(missing_ok=True)
        elif phase == tracked_phase:
            header, rows = _read_rows(self.trajectory_path)
            if header:
                i = header.index("step")
                keep = [r for r in rows if int(r[i]) <= global_step]
                atomic_write_text(self.trajectory_path,
                                  _csv_text(header, [dict(zip(header, r, strict=True)) for r in keep], True))
