"""``kdexplain run`` (kdexplain/pipeline/run.py) end to end on a tiny config: one seed, and
several seeds sharing one teacher, with the calibration and the localisation analysis run
on the same folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdexplain.cli import main
from tests.pipeline_common import TINY
from tests.pipeline_common import write_config as _write_config


@pytest.mark.slow
def test_run_end_to_end_through_the_cli(tmp_path):
    cfg = _write_config(tmp_path, name="e2e")
    out = tmp_path / "report"
    assert main(["run", str(cfg), "--report-dir", str(out)]) == 0
    assert (out / "index.md").is_file()
    assert (tmp_path / "runs" / "e2e" / "sweep" / "manifest.json").is_file()
    # a second run finds everything done and only rewrites the report
    assert main(["run", str(cfg), "--report-dir", str(out)]) == 0


@pytest.mark.slow
def test_multi_seed_run_shares_one_teacher_quantified_once(tmp_path, capsys):
    import pandas as pd

    cfg = _write_config(tmp_path, name="seeds", seeds=[0, 1],
                        analysis={**TINY["analysis"], "n_images": 3})
    out = tmp_path / "report"
    assert main(["run", str(cfg), "--report-dir", str(out)]) == 0
    base = tmp_path / "runs" / "seeds"
    teacher = base / "shared_teacher"
    assert (teacher / "teacher" / "last.pt").is_file()
    assert sorted(p.parent.name for p in (teacher / "sweep").glob("*/epoch_*.pt")) == \
        ["teacher"] * 3
    for s in (0, 1):
        run = base / f"seed_{s}"
        assert not (run / "teacher").exists() and (run / "teacher.json").is_file()
        assert not (run / "sweep" / "teacher").exists()
        assert {p.parent.name for p in (run / "sweep").glob("*/epoch_*.pt")} == \
            {"student", "baseline"}
    per_image = pd.read_csv(out / "per_image.csv")
    assert set(per_image.loc[per_image["role"] == "teacher", "seed"]) == {0}
    hyp = pd.read_csv(out / "hypotheses.csv")
    carrying = hyp[hyp["carries_verdict"]]
    assert (carrying["level"] == "seeds").all() and (carrying["n_pairs"] == 2).all()
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "shared by every seed" in index and "## Seed-level table" in index
    assert "T is one training run, shared by every seed, so its ± and interval are over its " \
           "images only" in index
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert sorted(zip(per_seed["seed"], per_seed["role"], strict=True)) == [
        (0, "baseline"), (0, "student"), (0, "teacher"), (1, "baseline"), (1, "student")]
    assert per_seed[["train_acc", "val_acc"]].notna().all().all()
    assert per_seed["val_acc"].between(0, 1).all()
    # the localisation analysis reads the same folder: two seeds, the shared teacher once
    from analyses.localisation.pipeline import quickstart_networks, quickstart_run_dirs

    dirs = quickstart_run_dirs([base])
    assert dirs == [base / "seed_0", base / "seed_1"]
    seen: set[Path] = set()
    nets = [n for d in dirs for n in quickstart_networks(d, 2, seen)]
    assert [(n.seed, n.name) for n in nets] == [
        (0, "teacher"), (0, "student"), (0, "baseline"), (1, "student"), (1, "baseline")]
    assert seen == {teacher.resolve()}
    assert len({n.layer for n in nets}) == 1  # the distilled layer, as its module path
    assert all(len(n.sets["val"]["keys"]) == 2 for n in nets)
    # the reference preset on a subset of the same sweeps (docs/method.md section 4's calibration), resumable
    cal_out = tmp_path / "calibration"
    assert main(["calibrate", str(base), "--n-images", "2", "--out", str(cal_out)]) == 0
    units = sorted((base).glob("*/calibration/*/epoch_*.pt"))
    assert [(u.parts[-4], u.parts[-2]) for u in units] == [
        ("seed_0", "baseline"), ("seed_0", "student"), ("seed_1", "baseline"),
        ("seed_1", "student"), ("shared_teacher", "teacher")]
    assert all(u.name == "epoch_0002.pt" for u in units)  # each model's last checkpoint
    unit = torch.load(units[0], weights_only=True)
    assert unit["settings"]["preset"] == "reference" and len(unit["image_keys"]) == 2
    # the subset follows the report's own selection: each model's first 2 used images
    images = pd.read_csv(out / "images.csv")
    used = images[images["used"] & (images["seed"] == 0) & (images["role"] == "baseline")]
    assert unit["image_keys"] == used["image_key"].tolist()[:2]
    import json

    result = json.loads((cal_out / "calibration.json").read_text())
    cal = result["calibration"]
    assert cal["grids"] == 5 * 2 and cal["reference_concepts"] == cal["concepts_calibrated"]
    # the last checkpoints: hypothesis 1 only, under each estimator, paired by seed
    assert [(v["estimator"], v["hypothesis"]) for v in result["verdicts"]] == [
        ("reference preset, b", 1), ("default preset, b", 1), ("default preset, calibrated b'", 1)]
    assert {(t["level"], t["n_pairs"]) for t in result["tests"]} == {("seeds", 2)}
    assert [t["metric"] for t in result["tests"]][:3] == ["N_fg", "N_bg", "fg_ratio"]
    md = (cal_out / "calibration.md").read_text()
    assert "## The hypotheses under each estimator" in md and "need every checkpoint" in md
    stamps = [u.stat().st_mtime_ns for u in units]
    assert main(["calibrate", str(base), "--n-images", "2", "--out", str(cal_out)]) == 0
    assert [u.stat().st_mtime_ns for u in units] == stamps  # nothing recomputed
    assert json.loads((cal_out / "calibration.json").read_text())["calibration"] == cal
    # a sweep unit gone: one clear line naming it, nothing written
    gone = base / "seed_1" / "sweep" / "student" / "epoch_0002.pt"
    kept_unit = gone.read_bytes()
    gone.unlink()
    (base / "seed_1" / "calibration" / "student" / ".epoch_0002.pt.x1.tmp").write_bytes(b"")
    capsys.readouterr()
    assert main(["calibrate", str(base), "--n-images", "2", "--out", str(cal_out)]) == 2
    err = capsys.readouterr().err
    assert "missing (student@2)" in err and f"kdexplain sweep {base / 'seed_1'}" in err
    gone.write_bytes(kept_unit)
    # the leftover of an interrupted save is removed under the lock; nothing is recomputed
    assert main(["calibrate", str(base), "--n-images", "2", "--out", str(cal_out)]) == 0
    assert not (base / "seed_1" / "calibration" / "student" / ".epoch_0002.pt.x1.tmp").exists()
    assert [u.stat().st_mtime_ns for u in units] == stamps
    # every checkpoint: all three hypotheses under each estimator; the last checkpoints,
    # made on the same images, are not recomputed
    all_out = tmp_path / "calibration_all"
    assert main(["calibrate", str(base), "--n-images", "2", "--checkpoints", "all",
                 "--out", str(all_out)]) == 0
    assert [u.stat().st_mtime_ns for u in units] == stamps
    assert len(list(base.glob("*/calibration/*/epoch_*.pt"))) == 3 + 2 * 2 * 3  # T 0, 1, 2
    full = json.loads((all_out / "calibration.json").read_text())
    assert sorted({(v["estimator"], v["hypothesis"]) for v in full["verdicts"]}) == sorted(
        (e, h) for e in ("reference preset, b", "default preset, b",
                         "default preset, calibrated b'") for h in (1, 2, 3))
    assert {t["metric"] for t in full["tests"]} == {"N_fg", "N_bg", "fg_ratio", "D_mean",
                                                    "D_std", "rho"}
    assert "need every checkpoint" not in (all_out / "calibration.md").read_text()
    # the localisation analysis end to end on these runs (--quick: 2 images, no spurious nets)
    pytest.importorskip("quantus", reason="the localisation analysis scores maps with quantus "
                        "(pip install -e '.[quantus]')")
    from analyses.localisation.__main__ import cli as localisation_cli

    loc = tmp_path / "localisation"
    assert localisation_cli(["--quick", "--run", str(base), "--out", str(loc)]) == 0
    page = (loc / "index.md").read_text(encoding="utf-8")
    for section in ("## Answer", "RelevanceRankAccuracy", "RelevanceMassAccuracy", "## Cost"):
        assert section in page
    scores = pd.read_csv(loc / "per_image.csv")
    assert {"PE layer", "PE logit", "Occlusion", "FeatureAblation", "Saliency",
            "IntegratedGradients"} <= set(scores["method"])
    assert (loc / "figures" / "quickstart_maps.png").is_file()
