"""What the training tests share: the tiny config and a CSV reader. The tiny config trained
once is the ``tiny_run`` fixture in tests/conftest.py; the scenes cache lives in the
session's temporary data root (tests/conftest.py)."""

from __future__ import annotations

import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


def rows(path: Path) -> list[dict]:
    """The rows of the CSV file ``path``, as dicts by column."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
