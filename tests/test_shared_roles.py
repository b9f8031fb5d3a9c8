"""kdexplain.pipeline.shared_roles: a study trains a layer-independent network once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kdexplain.cli import main
from kdexplain.config import load_config
from kdexplain.pipeline.shared_roles import layer_bound, role_recipe
from kdexplain.pipeline.sweeps import load_sweep

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
FAST = {"teacher": {"pretrain_epochs": 0, "epochs": 1},
        "baseline": {"epochs": 2}, "checkpoints": [0, 1, 2],
        "analysis": {"n_images": 3, "steps": 5, "samples": 4, "grid": 4}}


def _config(tmp: Path, **changes) -> Path:
    raw = {**TINY, **FAST, "out_dir": str(tmp / "runs"), "name": "share", "seeds": [0, 1],
           "student": {"mode": "soft", "phase1_epochs": 2, "phase2_epochs": 1, "control": True}, **changes}
    path = tmp / "share.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _seed_cfg(path: Path, *overrides: str):
    return load_config(path, list(overrides)).for_seed(0)


def test_recipe_ignores_the_layer_only_where_training_does(tmp_path):
    path = _config(tmp_path)
    conv = _seed_cfg(path, "model.layer=conv", "model.track_layers=[fc1]")
    fc1 = _seed_cfg(path, "model.layer=fc1", "model.track_layers=[conv]")
    for role in ("teacher", "baseline", "control"):
        assert role_recipe(conv, role) == role_recipe(fc1, role) is not None
    assert role_recipe(conv, "student", "a" * 64) == role_recipe(fc1, "student", "a" * 64)
    # another teacher, another student; the layers whose distance is recorded must match
    assert role_recipe(conv, "student", "a" * 64) != role_recipe(conv, "student", "b" * 64)
    untracked = _seed_cfg(path, "model.layer=fc1")
    assert role_recipe(untracked, "baseline") != role_recipe(conv, "baseline")
    # what a role's training reads changes its recipe, nothing else does
    assert role_recipe(_seed_cfg(path, "baseline.epochs=3"), "baseline") != \
        role_recipe(_seed_cfg(path), "baseline")
    assert role_recipe(_seed_cfg(path, "baseline.epochs=3"), "control") == \
        role_recipe(_seed_cfg(path), "control")
    assert role_recipe(_seed_cfg(path, "analysis.n_images=5"), "baseline") == \
        role_recipe(_seed_cfg(path), "baseline")
    assert role_recipe(conv.model_copy(update={"seed": 1}), "baseline") != \
        role_recipe(conv, "baseline")
    feature = _seed_cfg(path, "student.mode=feature")
    assert layer_bound(feature, "student") and layer_bound(feature, "control")
    assert role_recipe(feature, "student", "a" * 64) is None
    assert not layer_bound(feature, "baseline")


@pytest.mark.slow
def test_a_study_trains_layer_free_networks_once(tmp_path, capsys):
    variants = {"c": ["model.layer=conv", "model.track_layers=[fc1]"],
                "f": ["model.layer=fc1", "model.track_layers=[conv]"],
                "ff": ["model.layer=fc1", "model.track_layers=[conv]", "student.mode=feature"]}
    path = _config(tmp_path, variants=variants)
    assert main(["run", str(path), "--report-dir", str(tmp_path / "rep")]) == 0
    runs = tmp_path / "runs" / "share"
    copied = [ln for ln in capsys.readouterr().err.splitlines() if "not retrained" in ln]
    # f takes everything from c; ff (feature) only the teacher and the baselines
    assert len(copied) == 2
    assert "7 model(s)" in copied[0] and "seed_1/control" in copied[0]
    assert "3 model(s)" in copied[1] and "student" not in copied[1]
    for seed in (0, 1):
        for role in ("baseline", "student", "control"):
            a = (runs / "c" / f"seed_{seed}" / role / "metrics.csv").read_text()
            assert a == (runs / "f" / f"seed_{seed}" / role / "metrics.csv").read_text()
        feat = pd.read_csv(runs / "ff" / "seed_0" / "student" / "metrics.csv")
        assert set(feat["phase"]) == {"phase1", "phase2"}  # trained there, at fc1
    # analysed at each variant's layer, with the distance recorded for that layer
    wd = pd.read_csv(runs / "c" / "seed_0" / "baseline" / "weight_distance.csv")
    fc1 = [c for c in wd.columns if c.startswith("d_step@")]
    assert len(fc1) == 1
    at_f, at_c = load_sweep(runs / "f" / "seed_0"), load_sweep(runs / "c" / "seed_0")
    assert at_f.distance["baseline"].tolist() == pytest.approx(wd[fc1[0]].tolist())
    assert at_c.distance["baseline"].tolist() == pytest.approx(wd["d_step"].tolist())
    for variant in variants:
        assert (tmp_path / "rep" / variant / "per_seed.csv").is_file()


@pytest.mark.slow
def test_a_copied_network_without_the_layers_distance_is_refused(tmp_path, capsys):
    variants = {"c": ["model.layer=conv"], "f": ["model.layer=fc1"]}
    path = _config(tmp_path, variants=variants, seeds=[0])
    # untracked: the recipes differ, so nothing is copied and both variants train
    assert main(["run", str(path), "--report-dir", str(tmp_path / "rep")]) == 0
    runs = tmp_path / "runs" / "share"
    # a baseline moved by hand from the conv variant into the fc1 one is refused
    for d in ("f/seed_0/baseline", "f/seed_0/sweep"):
        shutil.rmtree(runs / d)
    shutil.copytree(runs / "c" / "seed_0" / "baseline", runs / "f" / "seed_0" / "baseline")
    assert main(["sweep", str(runs / "f" / "seed_0")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "model.track_layers" in err
