"""benchmarks/rerun_variance.py: the split of a per-seed S - B difference's spread, on
hand-computed values."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.benchmarks_common import load_benchmark


def _module():
    return load_benchmark("rerun_variance")


def _study(root: Path, diffs: list[float]) -> Path:
    """A study folder with one variant whose seed s has S - B = diffs[s] in every metric on
    both of its images (so no per-image spread)."""
    rows = []
    for seed, d in enumerate(diffs):
        for i in range(2):
            for role, value in (("student", 10.0 + d), ("baseline", 10.0)):
                rows.append({"seed": seed, "role": role, "image_key": f"s{seed}/{i}",
                             "N_fg": value, "N_bg": value, "fg_ratio": value,
                             "peak_distance": value + i, "rho": value})
    v = root / "v"
    v.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(v / "per_image.csv", index=False)
    metrics = ["N_fg", "N_bg", "fg_ratio", "D_mean", "D_std", "rho"]
    pd.DataFrame({"metric": metrics, "p_value": [0.5] * 6, "carries_verdict": [True] * 6}
                 ).to_csv(v / "hypotheses.csv", index=False)
    return root


def test_between_unshared_and_per_image_parts_by_hand(tmp_path, monkeypatch, capsys):
    first = _study(tmp_path / "a", [1.0, 2.0, 3.0])
    second = _study(tmp_path / "b", [1.0, 2.0, 5.0])
    monkeypatch.setattr(sys, "argv", ["rerun_variance.py", str(first), str(second)])
    _module().main()
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("| v | 1 | N_fg |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # between seeds: (var(1, 2, 3) + var(1, 2, 5)) / 2 = (1 + 13/3) / 2; not shared by the
    # runs: var(0, 0, -2) / 2 = (4/3) / 2; per-image spread: none (both images give the same)
    assert float(cells[4]) == pytest.approx(8 / 3, abs=0.005)
    assert float(cells[5]) == pytest.approx(2 / 3, abs=0.0005)
    assert float(cells[6]) == 0.0
    assert float(cells[8]) == pytest.approx(np.corrcoef([1, 2, 3], [1, 2, 5])[0, 1], abs=0.01)


def test_no_common_variant_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["rerun_variance.py", str(tmp_path / "x"),
                                      str(tmp_path / "y")])
    with pytest.raises(SystemExit, match="error: no variant"):
        _module().main()
