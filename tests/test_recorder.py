"""The Recorder on a plain PyTorch loop: the same distances as kdexplain's trainer, resume,
and a report of the assembled run (docs/own-models.md)."""

from __future__ import annotations

import filecmp

import numpy as np
import pandas as pd
import pytest
import torch

from kdexplain.models import load_model
from kdexplain.record import Recorder, assemble_run
from tests import plain_loop as plain

#: every test here needs a finished training run or trains one
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """kdexplain's own triplet on the tiny config, and the same S and B by the plain loop,
    recorded by the Recorder."""
    from kdexplain.train import train_triplet

    tmp = tmp_path_factory.mktemp("recorder")
    cfg = plain.tiny_config(tmp / "runs")
    run = train_triplet(cfg)
    train_set, val_set = plain.tensors(cfg, "train"), plain.tensors(cfg, "val")
    teacher = load_model(run / "teacher" / "checkpoints" / f"epoch_{cfg.teacher.epochs:04d}.pt")
    n_classes = len(cfg.data.options["classes"])
    rec_dirs = {}
    for role, epochs, t in (("baseline", cfg.baseline.epochs, None),
                            ("student", cfg.student.phase1_epochs, teacher)):
        model = plain.init_model(cfg, n_classes)
        rec = Recorder(tmp / "mine" / role, model, arch=cfg.model.arch, layer=cfg.model.layer,
                       keep=cfg.checkpoints, num_classes=n_classes, role=role,
                       model_kwargs=cfg.model.kwargs, seed=cfg.seed)
        plain.train(model, role, cfg, train_set, val_set, epochs, teacher=t, recorder=rec)
        rec_dirs[role] = rec.dir
    return {"cfg": cfg, "run": run, "mine": rec_dirs, "tmp": tmp, "teacher": teacher,
            "data": (train_set, val_set), "classes": n_classes}


@pytest.mark.parametrize("role", ["baseline", "student"])
def test_recorded_distances_equal_the_trainers(trained, role):
    ours = pd.read_csv(trained["mine"][role] / "weight_distance.csv")
    theirs = pd.read_csv(trained["run"] / role / "weight_distance.csv")
    assert list(ours.columns) == list(theirs.columns)
    assert ours["epoch"].tolist() == theirs["epoch"].tolist() == [0, 1, 2]
    assert ours["global_step"].tolist() == theirs["global_step"].tolist()
    assert (ours["d_step"] > 0).iloc[1:].all()  # the layer moved
    np.testing.assert_allclose(ours["d_step"], theirs["d_step"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(ours["d_epoch"], theirs["d_epoch"], rtol=1e-6, atol=0)
    tr_ours = pd.read_csv(trained["mine"][role] / "trajectory.csv")
    tr_theirs = pd.read_csv(trained["run"] / role / "trajectory.csv")
    np.testing.assert_allclose(tr_ours["path_length"], tr_theirs["path_length"], rtol=1e-6)
    # the kept checkpoints hold the trainer's weights
    a = torch.load(trained["mine"][role] / "checkpoints" / "epoch_0002.pt", weights_only=True)
    b = torch.load(trained["run"] / role / "checkpoints" / "epoch_0002.pt", weights_only=True)
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-7)
    assert a["arch"] == b["arch"] and a["layer"] == b["layer"] and a["phase"] == b["phase"]
    m = pd.read_csv(trained["mine"][role] / "metrics.csv")
    assert m["epoch"].tolist() == [0, 1, 2] and m["val_acc"].between(0, 1).all()


def test_resumed_recording_equals_an_uninterrupted_one(trained):
    cfg, tmp, n = trained["cfg"], trained["tmp"], trained["classes"]
    train_set, val_set = trained["data"]

    def recorder(model):
        return Recorder(tmp / "resumed" / "baseline", model, arch=cfg.model.arch,
                        layer=cfg.model.layer, keep=cfg.checkpoints, num_classes=n,
                        role="baseline", model_kwargs=cfg.model.kwargs, seed=cfg.seed)

    model = plain.init_model(cfg, n)
    first = plain.train(model, "baseline", cfg, train_set, val_set, 2, recorder=recorder(model),
                        stop_after=1)
    torch.save(first, tmp / "loop_ckpt.pt")  # the loop's own checkpoint, recorder included
    # the interrupted run went on to write epoch 2's rows before it died
    plain.train(model, "baseline", cfg, train_set, val_set, 2, recorder=recorder(model),
                state=torch.load(tmp / "loop_ckpt.pt", weights_only=True), stop_after=2)
    model = plain.init_model(cfg, n)
    plain.train(model, "baseline", cfg, train_set, val_set, 2, recorder=recorder(model),
                state=torch.load(tmp / "loop_ckpt.pt", weights_only=True))
    for name in ("weight_distance.csv", "trajectory.csv"):
        assert filecmp.cmp(tmp / "resumed" / "baseline" / name,
                           trained["mine"]["baseline"] / name, shallow=False), name
    assert pd.read_csv(tmp / "resumed" / "baseline" / "metrics.csv")["epoch"].tolist() == [0, 1, 2]


def test_recorder_refuses_a_model_of_another_architecture(trained, tmp_path):
    cfg = trained["cfg"]
    model = plain.init_model(cfg, trained["classes"])
    with pytest.raises(ValueError, match="does not fit kdnet"):
        Recorder(tmp_path / "x", model, arch="kdnet", layer="fc1", keep=[0], num_classes=5,
                 role="student", model_kwargs=cfg.model.kwargs)
    with pytest.raises(ValueError, match="role must be one of"):
        Recorder(tmp_path / "x", model, arch="kdnet", layer="fc1", keep=[0], num_classes=3,
                 role="pupil", model_kwargs=cfg.model.kwargs)
    assert not (tmp_path / "x").exists()
    again = Recorder(trained["mine"]["baseline"], model, arch="kdnet", layer="fc1", keep=[0],
                     num_classes=3, role="baseline", model_kwargs=cfg.model.kwargs)
    with pytest.raises(FileExistsError, match="already holds a recording"):
        again.start()


def test_assemble_refuses_a_recording_of_another_role(trained, tmp_path):
    run = trained["run"]
    with pytest.raises(ValueError, match="was recorded as the baseline"):
        assemble_run(tmp_path / "run", teacher=run / "teacher" / "checkpoints" /
                     "epoch_0002.pt", student=trained["mine"]["baseline"],
                     baseline=trained["mine"]["baseline"], num_classes=trained["classes"],
                     config=trained["cfg"])
    assert not (tmp_path / "run").exists()


def test_report_of_the_recorded_run_has_the_trainers_distances(trained):
    """Done-when of issue 27: S and B trained by a plain loop, recorded, assembled with the
    teacher, swept and reported; the report's hypothesis-2 distances are the trainer's."""
    from kdexplain.pipeline import make_report, sweep

    cfg, run, tmp = trained["cfg"], trained["run"], trained["tmp"]
    out = assemble_run(tmp / "assembled", teacher=run / "teacher" / "checkpoints" /
                       "epoch_0002.pt", student=trained["mine"]["student"],
                       baseline=trained["mine"]["baseline"], num_classes=trained["classes"],
                       config=cfg, seed=cfg.seed)
    sweep(out, show_progress=False)
    report = make_report([out], tmp / "report")
    per_image = pd.read_csv(report / "per_image.csv")
    for role in ("student", "baseline"):
        wd = pd.read_csv(run / role / "weight_distance.csv").set_index("epoch")
        rows = per_image[per_image["role"] == role]
        assert len(rows) > 0
        np.testing.assert_allclose(rows["total_distance_step"], wd["d_step"].iloc[-1], rtol=1e-6)
        np.testing.assert_allclose(rows["total_distance_epoch"], wd["d_epoch"].iloc[-1], rtol=1e-6)
        peaks = rows.dropna(subset=["peak_distance_step"])
        expect = wd.loc[peaks["peak_epoch"].astype(int), "d_step"].to_numpy()
        np.testing.assert_allclose(peaks["peak_distance_step"], expect, rtol=1e-6)
    assert (report / "index.md").is_file()
