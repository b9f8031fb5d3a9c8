"""torchdistill end to end (examples/torchdistill): distil with its KDLoss, record with the
Recorder, a baseline without the teacher, assemble, sweep, report. Skipped without the
optional extra (pip install -e ".[torchdistill]")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torchdistill", reason="the optional extra: pip install -e '.[torchdistill]'")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torchdistill" / "distil.py"


def _example():
    spec = importlib.util.spec_from_file_location("kdexplain_torchdistill_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_torchdistill_kd_is_recorded_assembled_and_reported(tmp_path):
    from kdexplain.pipeline import make_report, sweep

    run = _example().distil(tmp_path)
    assert (tmp_path / "teacher.pth").is_file()
    for role in ("student", "baseline"):
        wd = pd.read_csv(run / role / "weight_distance.csv")
        assert wd["epoch"].tolist() == [0, 1, 2, 3]
        assert (np.diff(wd["d_step"]) > 0).all() and (wd["d_step"] >= wd["d_epoch"] - 1e-12).all()
        m = pd.read_csv(run / role / "metrics.csv")
        assert m["val_acc"].between(0, 1).all() and m["train_loss"].iloc[1:].notna().all()
    sweep(run, show_progress=False)
    report = make_report([run], tmp_path / "report")
    index = (report / "index.md").read_text()
    assert "Hypothesis 2" in index and "per-epoch form of the weight distance" not in index
    per_image = pd.read_csv(report / "per_image.csv")
    for role in ("student", "baseline"):
        wd = pd.read_csv(run / role / "weight_distance.csv")
        rows = per_image[per_image["role"] == role]
        np.testing.assert_allclose(rows["total_distance_step"], wd["d_step"].iloc[-1], rtol=1e-9)
