"""``train-triplet`` (kdexplain/train/triplet.py) end to end on the tiny config: the run
directory contract, the student and the baseline from one start, the logit modes, one folder
per seed, and a config error as one line."""

from __future__ import annotations

import pytest
import torch

from kdexplain.cli import main
from kdexplain.config import load_config
from kdexplain.train import (
    list_checkpoints,
    load_checkpoint,
    path_length,
    train_triplet,
    weight_distances,
)
from tests.train_common import TINY
from tests.train_common import rows as _rows


@pytest.mark.slow
def test_cli_run_directory_contract(tiny_run):
    run = tiny_run
    for name in ("config.yaml", "environment.json", "summary.json"):
        assert (run / name).is_file(), name
    cfg = load_config(run / "config.yaml")
    assert cfg.name == "e2e" and cfg.model.layer == "fc1"
    for role in ("teacher", "student", "baseline"):
        d = run / role
        ckpts = list_checkpoints(d)
        assert [e for e, _ in ckpts] == [0, 1, 2]
        model, ck = load_checkpoint(ckpts[-1][1])
        assert not model.training
        for key in ("model", "optimizer", "scheduler", "epoch", "global_step", "phase", "arch",
                    "num_classes", "model_kwargs", "layer", "role", "rng"):
            assert key in ck, key
        assert ck["layer"] == "classifier.0" and ck["role"] == role and ck["num_classes"] == 3
        metrics = _rows(d / "metrics.csv")
        assert list(metrics[0]) == ["epoch", "phase", "train_loss", "train_acc", "val_loss",
                                    "val_acc", "lr", "seconds"]
        traj = _rows(d / "trajectory.csv")
        assert list(traj[0]) == ["step", "epoch", "weight_step_norm", "path_length"]
        # 24 training images, batch 8: 3 steps per epoch, 2 epochs, plus the step-0 row
        assert [int(r["step"]) for r in traj] == list(range(7))
        dist = weight_distances(d)
        assert list(dist.columns) == ["epoch", "global_step", "d_step", "d_epoch"]
        assert dist["epoch"].tolist() == [0, 1, 2] and dist["global_step"].tolist() == [0, 3, 6]
        # d_step at a checkpoint = the trajectory's path length at that step
        by_step = {int(r["step"]): float(r["path_length"]) for r in traj}
        assert dist["d_step"].tolist() == pytest.approx([by_step[s] for s in (0, 3, 6)])
        # d_epoch recomputed from the kept checkpoints (every epoch is kept here)
        weights = [torch.load(p, weights_only=True)["model"]["classifier.0.weight"]
                   for _, p in ckpts]
        d_epoch = path_length(weights)
        assert dist["d_epoch"].tolist() == pytest.approx(d_epoch, rel=1e-5)
        assert dist["d_step"].iloc[-1] >= dist["d_epoch"].iloc[-1] - 1e-9  # path >= chords
    phases = {r["phase"] for r in _rows(run / "teacher" / "metrics.csv")}
    assert phases == {"pretrain", "finetune"}
    assert [e for e, _ in list_checkpoints(run / "teacher", "pretrain")] == [0, 1]
    assert [e for e, _ in list_checkpoints(run / "student", "phase2")] == [0, 1]


@pytest.mark.slow
def test_student_and_baseline_start_from_the_same_weights(tiny_run):
    s = torch.load(list_checkpoints(tiny_run / "student")[0][1], weights_only=True)["model"]
    b = torch.load(list_checkpoints(tiny_run / "baseline")[0][1], weights_only=True)["model"]
    assert all(torch.equal(s[k], b[k]) for k in s)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["soft", "logit_l2"])
def test_logit_modes_have_one_phase(tmp_path, mode):
    cfg = load_config(TINY, [f"student.mode={mode}", "teacher.pretrain_epochs=0",
                             "teacher.epochs=1", "baseline.epochs=0", "student.phase1_epochs=1",
                             "model.track_layers=[fc2]"])
    run = train_triplet(cfg, tmp_path / mode)
    student = run / "student"
    assert not (student / "checkpoints" / "phase2").exists()
    rows = _rows(student / "metrics.csv")
    assert [(r["phase"], r["epoch"]) for r in rows] == [("phase1", "0"), ("phase1", "1")]
    assert rows[1]["train_acc"] != "" and rows[1]["val_acc"] != ""
    traj = _rows(student / "trajectory.csv")
    assert list(traj[0]) == ["step", "epoch", "weight_step_norm", "path_length",
                             "weight_step_norm@classifier.3", "path_length@classifier.3"]
    # every layer of the network trains in these modes
    (_, a), (_, b) = list_checkpoints(student)
    wa, wb = (torch.load(p, weights_only=True)["model"] for p in (a, b))
    assert all(not torch.equal(wa[k], wb[k]) for k in wa if k.endswith("weight"))


@pytest.mark.slow
def test_seeds_run_into_their_own_folders(tmp_path):
    from kdexplain.train import train_all_seeds

    cfg = load_config(TINY, ["seeds=[3,4]", "teacher.pretrain_epochs=0", "teacher.epochs=0",
                             "baseline.epochs=0", "student.phase1_epochs=0",
                             "student.phase2_epochs=0", f"out_dir={tmp_path}"])
    runs = train_all_seeds(cfg)
    assert runs == [tmp_path / "tiny" / "seed_3", tmp_path / "tiny" / "seed_4"]
    a = torch.load(list_checkpoints(runs[0] / "baseline")[0][1], weights_only=True)
    b = torch.load(list_checkpoints(runs[1] / "baseline")[0][1], weights_only=True)
    assert a["seed"] == 3 and b["seed"] == 4
    assert not torch.equal(a["model"]["features.0.weight"], b["model"]["features.0.weight"])
    assert load_config(runs[1] / "config.yaml").seed == 4


def test_unknown_config_key_is_an_error_line(tmp_path, capsys):
    rc = main(["train-triplet", str(TINY), f"out_dir={tmp_path}", "optim.lrate=1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "optim.lrate: unknown key; allowed keys here:" in err and "lr" in err
