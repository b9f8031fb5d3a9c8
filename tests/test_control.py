"""The random-teacher control (student.control) and fidelity columns, end to end, tiny."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from kdexplain.cli import main

TINY = {
    "name": "ctl", "seed": 0, "seeds": [0, 1], "device": "cpu",
    "data": {"name": "scenes", "image_size": 32, "options": {"images_per_class": 6}},
    "model": {"arch": "kdnet", "kwargs": {"width": 4, "hidden": 16}, "layer": "fc1"},
    "teacher": {"epochs": 2},
    "student": {"mode": "feature", "phase1_epochs": 2, "phase2_epochs": 1, "control": True},
    "baseline": {"epochs": 2},
    "optim": {"batch_size": 32, "lr": 0.01},
    "checkpoints": [0, 1, 2],
    "analysis": {"n_images": 3, "steps": 6, "samples": 4, "grid": 8},
}


@pytest.fixture(scope="module")
def control_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("control")
    path = tmp / "ctl.yaml"
    path.write_text(yaml.safe_dump({**TINY, "out_dir": str(tmp / "runs")}))
    out = tmp / "report"
    assert main(["run", str(path), "--report-dir", str(out)]) == 0
    return tmp / "runs" / "ctl", out


@pytest.mark.slow
def test_control_is_trained_swept_and_tested(control_report):
    base, out = control_report
    for s in (0, 1):
        run = base / f"seed_{s}"
        assert (run / "control" / "last.pt").is_file()
        assert {p.parent.name for p in (run / "sweep").glob("*/epoch_*.pt")} == \
            {"student", "baseline", "control"}
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert sorted(per_seed.loc[per_seed["role"] == "control", "seed"]) == [0, 1]
    assert set(per_seed.loc[per_seed["role"] == "control", "label"]) == {"C"}
    tests = pd.read_csv(out / "control_tests.csv")
    assert set(tests["comparison"]) == {"C vs B", "S vs C"}
    assert (tests["n_pairs"] == 2).all()
    assert set(tests.loc[tests["comparison"] == "S vs C", "direction"]) <= {"S > C", "S < C"}
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "## The random-teacher control" in index
    assert "If S's differences from B also appear for C, they do not come from the " \
           "teacher's knowledge" in index
    # the verdicts still compare S with B only
    hyp = pd.read_csv(out / "hypotheses.csv")
    assert (hyp.loc[hyp["carries_verdict"], "n_pairs"] == 2).all()


@pytest.mark.slow
def test_fidelity_columns_and_files(control_report):
    base, out = control_report
    per_seed = pd.read_csv(out / "per_seed.csv")
    for col in ("agreement", "kl_teacher", "ece"):
        assert per_seed[col].notna().all(), col
    teacher = per_seed[per_seed["role"] == "teacher"].iloc[0]
    assert teacher["agreement"] == 1.0 and teacher["kl_teacher"] == pytest.approx(0, abs=1e-9)
    others = per_seed[per_seed["role"] != "teacher"]
    assert others["agreement"].between(0, 1).all() and (others["kl_teacher"] >= 0).all()
    assert per_seed["ece"].between(0, 1).all()
    rec = json.loads((base / "seed_0" / "control" / "fidelity.json").read_text())
    assert rec["ece_bins"] == 15 and rec["split"] == "val"
    assert "agreement with T" in (out / "per_seed.md").read_text(encoding="utf-8")


def test_control_off_by_default(tmp_path):
    from kdexplain.config import parse_config

    assert parse_config({"name": "x"}).student.control is False


def test_control_tests_by_hand():
    """Three seeds, two images each; C - B = +1 N_fg in every seed, S - C = -2 in every seed:
    the exact sign-flip test over 3 seeds gives p = 2 / 2^3 = 0.25 for both."""
    import numpy as np

    from kdexplain.concepts import ConceptSettings
    from kdexplain.concepts.hypotheses import control_tests

    rows = []
    for seed in range(3):
        for k in range(2):
            base = {"seed": seed, "image_key": f"i{k}", "N_bg": 5.0 + k, "fg_ratio": 0.5,
                    "peak_distance": 0.1 * (k + 1), "rho": 0.5}
            for role, n_fg in (("baseline", 10.0 + seed), ("control", 11.0 + seed),
                               ("student", 9.0 + seed)):
                rows.append({**base, "role": role, "N_fg": n_fg + k})
    out = control_tests(pd.DataFrame(rows), ConceptSettings(n_resamples=200))
    nfg = out[out["metric"] == "N_fg"].set_index("comparison")
    assert nfg.loc["C vs B", "diff"] == pytest.approx(1.0)
    assert nfg.loc["S vs C", "diff"] == pytest.approx(-2.0)
    assert nfg.loc["C vs B", "first"] == pytest.approx(12.5)  # mean over seeds of 11.5+seed
    assert nfg["p_value"].tolist() == pytest.approx([0.25, 0.25])
    assert nfg.loc["C vs B", "direction"] == "C > B"
    assert nfg.loc["S vs C", "direction"] == "S > C"
    # identical N_bg in every model: no difference, p = 1
    nbg = out[out["metric"] == "N_bg"]
    assert np.allclose(nbg["diff"], 0) and (nbg["p_value"] == 1).all()
