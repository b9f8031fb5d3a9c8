"""The sweep (resume, sharding), the report, and `kdexplain run` end to end, on a tiny run."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from kdexplain.cli import main
from kdexplain.pipeline import load_sweep, sweep

sweep_module = importlib.import_module("kdexplain.pipeline.sweeps")

TINY = {
    "name": "tinypipe",
    "seed": 0,
    "device": "cpu",
    "data": {"name": "scenes", "image_size": 32, "options": {"images_per_class": 6}},
    "model": {"arch": "kdnet", "kwargs": {"width": 4, "hidden": 16}, "layer": "fc1"},
    "teacher": {"epochs": 2},
    "student": {"mode": "feature", "phase1_epochs": 2, "phase2_epochs": 1},
    "baseline": {"epochs": 2},
    "optim": {"batch_size": 32, "lr": 0.01},
    "checkpoints": [0, 1, 2],
    "analysis": {"n_images": 4, "steps": 6, "samples": 4, "grid": 8},
}


def _write_config(tmp: Path, **changes) -> Path:
    cfg = {**TINY, "out_dir": str(tmp / "runs"), **changes}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pipe")
    cfg = _write_config(tmp)
    assert main(["train-triplet", str(cfg), "--quiet"]) == 0
    return tmp / "runs" / "tinypipe"


def _copy_without_sweep(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("sweep"))
    return dest


def _units(run: Path) -> dict[str, torch.Tensor]:
    return {str(p.relative_to(run)): torch.load(p, weights_only=False)["sigma"]
            for p in sorted((run / "sweep").glob("*/epoch_*.pt"))}


@pytest.mark.slow
def test_sweep_writes_every_unit_and_loads(trained_run, tmp_path):
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    sweep(run)
    units = _units(run)
    assert len(units) == 9  # 3 roles x 3 checkpoints
    data = load_sweep(run)
    assert set(data.entropy) == {"teacher", "student", "baseline"}
    assert data.entropy["student"].shape == (3, 4, 8, 8)
    assert data.foreground.shape == (4, 8, 8)
    assert list(data.epochs["baseline"]) == [0, 1, 2]
    assert data.distance["student"][0] == 0 and (data.distance["student"][1:] > 0).all()


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_recomputing(trained_run, tmp_path, monkeypatch):
    full = _copy_without_sweep(trained_run, tmp_path / "full")
    sweep(full, checkpoints_per_call=2)
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    real = sweep_module.quantify
    calls = {"n": 0}

    def dies_on_second_call(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "quantify", dies_on_second_call)
    with pytest.raises(KeyboardInterrupt):
        sweep(run, checkpoints_per_call=2)
    done = sorted((run / "sweep").glob("*/epoch_*.pt"))
    assert len(done) == 2  # the first call's two checkpoints, nothing half-written
    assert not list((run / "sweep").rglob("*.tmp"))
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_sweep(run)

    computed = []

    def counting(models, *args, **kwargs):
        computed.append(len(models))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "quantify", counting)
    sweep(run, checkpoints_per_call=2)
    assert sum(computed) == 7  # only the 7 missing checkpoints
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    a, b = _units(run), _units(full)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
def test_sweep_refuses_other_settings(trained_run, tmp_path):
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    sweep(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["analysis"]["alpha"] = 0.01  # report settings: the sweep stays valid
    cfg["analysis"]["concept_threshold"] = 0.3
    cfg["analysis"]["baseline_entropy"] = "per_image"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    sweep(run)
    cfg["analysis"]["samples"] = 8
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="other analysis settings"):
        sweep(run)


@pytest.mark.slow
def test_two_process_sweep_equals_single_process(trained_run, tmp_path):
    single = _copy_without_sweep(trained_run, tmp_path / "single")
    sharded = _copy_without_sweep(trained_run, tmp_path / "sharded")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KDEXPLAIN_PROGRESS": "0"}
    subprocess.run([sys.executable, "-m", "kdexplain.cli", "sweep", str(single)], env=env,
                   check=True, capture_output=True, timeout=300)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "kdexplain.cli", "sweep", str(sharded)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _units(single), _units(sharded)
    assert len(a) == 9 and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_report_command_writes_the_report(trained_run, tmp_path):
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    assert main(["sweep", str(run)]) == 0
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    for name in ("index.md", "concept_metrics.csv", "concept_metrics.md", "concept_metrics.tex",
                 "hypotheses.csv", "figures/entropy_heatmaps.png"):
        assert (out / name).is_file(), name
    text = (out / "index.md").read_text()
    assert "kdexplain report" in text
    # a report setting from the command line; the sweep is reused as it is
    assert main(["report", str(run), "--out", str(out), "--set", "alpha=0.01",
                 "--set", "analysis.distance=epoch"]) == 0
    text = (out / "index.md").read_text()
    assert "--set alpha=0.01" in text
    # the settings table (cells padded to the column width)
    assert re.search(r"\| `alpha` +\| 0\.01 +\|", text)
    assert re.search(r"\| `distance` +\| epoch +\|", text)


def test_report_on_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


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


@pytest.mark.slow
def test_study_index_shows_each_verdict_over_b_and_under_each_estimator(tmp_path):
    import json

    from kdexplain.pipeline.study_index import render_variants_index

    cfg = _write_config(tmp_path, name="st", seeds=[0, 1],
                        analysis={**TINY["analysis"], "n_images": 3},
                        variants={"fc": ["model.layer=fc1"],
                                  "soft": ["model.layer=fc1", "student.mode=soft"]})
    out = tmp_path / "reports" / "st"
    assert main(["run", str(cfg), "--report-dir", str(out)]) == 0
    meta = json.loads((out / "index.json").read_text())
    assert meta["variants"] == {"fc": ["model.layer=fc1"],
                                "soft": ["model.layer=fc1", "student.mode=soft"]}
    assert set(meta["seconds"]) == {"fc", "soft"} and meta["n_seeds"] == 2
    index = (out / "index.md").read_text()
    assert "| hypothesis | report: default preset, b = 0.2 | over b = 0.1 ... 0.4 |" in index
    assert re.search(r"\| 1 \| \*\*[a-z ]+\*\* \| (fragile|stable) \(", index)
    assert "subset: reference" not in index
    # a calibration of one variant shows up in the index, next to the report's verdicts
    assert main(["calibrate", str(tmp_path / "runs" / "st" / "fc"), "--n-images", "2",
                 "--checkpoints", "all", "--out", str(out / "fc" / "calibration")]) == 0
    index = (out / "index.md").read_text()
    fc, soft = index.split("## fc\n")[1].split("## soft\n")
    assert "subset: reference, b = 0.2" in fc and "subset: default, b' = " in fc
    cal = json.loads((out / "fc" / "calibration" / "calibration.json").read_text())
    ref = {v["hypothesis"]: v["verdict"] for v in cal["verdicts"]
           if v["estimator"] == "reference preset, b"}
    for h in (1, 2, 3):
        row = next(line for line in fc.splitlines() if line.startswith(f"| {h} |"))
        assert row.split(" | ")[3] == ref[h]
    assert "subset:" not in soft
    # an index.json that holds its header lines (reports/study's) renders them as they are
    meta = json.loads((out / "index.json").read_text())
    meta.update(title="kdexplain study: st", header=[
        "Variants of one experiment, each a report of its own.", "",
        "- Wall time of this session: 12.3 min (fc 6.1 min, soft 6.2 min).", ""])
    (out / "index.json").write_text(json.dumps(meta))
    again = render_variants_index(out).read_text()
    assert again.startswith("# kdexplain study: st\n\nVariants of one experiment, each a "
                            "report of its own.\n\n- Wall time of this session: 12.3 min")
    assert "subset: reference, b = 0.2" in again
    # without index.json the folder is no study's report folder (0.2 rebuilt it from index.md)
    (out / "index.json").unlink()
    with pytest.raises(FileNotFoundError, match="holds no index.json"):
        render_variants_index(out)
