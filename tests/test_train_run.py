"""Training runs end to end on the tiny config: the CLI, the run directory contract,
phase 2, resume equivalence, DDP with two gloo processes, and bad inputs.

The scenes cache lives in the session's temporary data root (tests/conftest.py).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdexplain.cli import main
from kdexplain.config import load_config
from kdexplain.train import (
    list_checkpoints,
    load_checkpoint,
    path_length,
    train_triplet,
    upstream_parameters,
    weight_distances,
)
from kdexplain.train.loop import ModelTrainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny config trained once through the CLI (every epoch kept)."""
    out = tmp_path_factory.mktemp("runs")
    rc = main(["train-triplet", str(TINY), f"out_dir={out}", "name=e2e", "-q"])
    assert rc == 0
    return out / "e2e"


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


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
        weights = [torch.load(p, weights_only=False)["model"]["classifier.0.weight"]
                   for _, p in ckpts]
        d_epoch = path_length(weights)
        assert dist["d_epoch"].tolist() == pytest.approx(d_epoch, rel=1e-5)
        assert dist["d_step"].iloc[-1] >= dist["d_epoch"].iloc[-1] - 1e-9  # path >= chords
    phases = {r["phase"] for r in _rows(run / "teacher" / "metrics.csv")}
    assert phases == {"pretrain", "finetune"}
    assert [e for e, _ in list_checkpoints(run / "teacher", "pretrain")] == [0, 1]
    assert [e for e, _ in list_checkpoints(run / "student", "phase2")] == [0, 1]


@pytest.mark.slow
def test_phase2_trains_only_the_layers_above_L(tiny_run):
    student = tiny_run / "student"
    _, end1 = load_checkpoint(list_checkpoints(student)[-1][1])
    _, end2 = load_checkpoint(list_checkpoints(student, "phase2")[-1][1])
    assert end1["phase"] == "phase1" and end2["phase"] == "phase2"
    model, _ = load_checkpoint(list_checkpoints(student)[-1][1])
    up = set(upstream_parameters(model, "fc1", 32))
    assert "classifier.0.weight" in up and "features.0.weight" in up
    for name, _ in model.named_parameters():
        same = torch.equal(end1["model"][name], end2["model"][name])
        assert same == (name in up), name


@pytest.mark.slow
def test_phase1_trains_only_up_to_L(tiny_run):
    student = tiny_run / "student"
    (_, first), *_, (_, last) = list_checkpoints(student)
    a = torch.load(first, weights_only=False)["model"]
    b = torch.load(last, weights_only=False)["model"]
    for name in ("classifier.3.weight", "classifier.6.weight"):
        assert torch.equal(a[name], b[name])
    assert not torch.equal(a["classifier.0.weight"], b["classifier.0.weight"])


@pytest.mark.slow
def test_student_and_baseline_start_from_the_same_weights(tiny_run):
    s = torch.load(list_checkpoints(tiny_run / "student")[0][1], weights_only=False)["model"]
    b = torch.load(list_checkpoints(tiny_run / "baseline")[0][1], weights_only=False)["model"]
    assert all(torch.equal(s[k], b[k]) for k in s)


def _state_tensors(obj, prefix=""):
    """Flatten nested dicts/lists of a checkpoint into {path: tensor-or-value}."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_state_tensors(v, f"{prefix}{k}/"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_state_tensors(v, f"{prefix}{i}/"))
    else:
        out[prefix] = obj
    return out


def _compare_runs(a: Path, b: Path) -> None:
    for role in ("teacher", "student", "baseline"):
        files_a = sorted(p.relative_to(a) for p in (a / role).rglob("*.pt"))
        files_b = sorted(p.relative_to(b) for p in (b / role).rglob("*.pt"))
        assert files_a == files_b
        for rel in files_a:
            ca = torch.load(a / rel, weights_only=False)
            cb = torch.load(b / rel, weights_only=False)
            for part in ("model", "optimizer", "scheduler", "trajectory", "weight_distance",
                         "epoch", "global_step", "phase"):
                fa, fb = _state_tensors(ca[part]), _state_tensors(cb[part])
                assert fa.keys() == fb.keys()
                for k in fa:
                    if isinstance(fa[k], torch.Tensor):
                        assert torch.equal(fa[k], fb[k]), (rel, part, k)
                    else:
                        assert fa[k] == fb[k], (rel, part, k)
        for name in ("metrics.csv", "trajectory.csv", "weight_distance.csv"):
            ra, rb = _rows(a / role / name), _rows(b / role / name)
            for r in ra + rb:
                r.pop("seconds", None)
            assert ra == rb, (role, name)


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch):
    cfg = load_config(TINY, ["teacher.epochs=3", "checkpoints=[0,2]"])
    full = train_triplet(cfg, tmp_path / "full")

    # Interrupt twice: once right after a saved epoch (the baseline's epoch 1), once in
    # the middle of an epoch's bookkeeping, after its CSV rows were written but before
    # its checkpoint (the student's phase-1 epoch 2), then resume each time.
    calls = {"n": 0}
    original = ModelTrainer._end_epoch

    def crash_after_baseline_epoch1(self, st, epoch, *args, **kwargs):
        original(self, st, epoch, *args, **kwargs)
        if self.role == "baseline" and epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ModelTrainer, "_end_epoch", crash_after_baseline_epoch1)
    with pytest.raises(KeyboardInterrupt):
        train_triplet(cfg, tmp_path / "resumed")

    original_save = ModelTrainer._save_bytes

    def crash_before_saving(obj, paths):
        calls["n"] += 1
        if obj["role"] == "student" and obj["phase"] == "phase1" and obj["epoch"] == 2:
            raise KeyboardInterrupt
        original_save(obj, paths)

    monkeypatch.setattr(ModelTrainer, "_end_epoch", original)
    monkeypatch.setattr(ModelTrainer, "_save_bytes", staticmethod(crash_before_saving))
    with pytest.raises(KeyboardInterrupt):
        train_triplet(cfg, tmp_path / "resumed", resume=True)
    monkeypatch.setattr(ModelTrainer, "_save_bytes", staticmethod(original_save))
    # the rows of the unsaved epoch are on disk; resuming must drop them
    assert any(r["epoch"] == "2" and r["phase"] == "phase1"
               for r in _rows(tmp_path / "resumed" / "student" / "metrics.csv"))
    train_triplet(cfg, tmp_path / "resumed", resume=True)
    _compare_runs(full, tmp_path / "resumed")


@pytest.mark.slow
def test_resume_refuses_a_changed_config(tmp_path):
    cfg = load_config(TINY, ["teacher.pretrain_epochs=0", "teacher.epochs=1", "baseline.epochs=0",
                             "student.phase1_epochs=0", "student.phase2_epochs=0"])
    run = train_triplet(cfg, tmp_path / "r")
    with pytest.raises(ValueError, match="already holds a run: pass --resume"):
        train_triplet(cfg, run)
    changed = load_config(TINY, ["teacher.pretrain_epochs=0", "teacher.epochs=1",
                                 "baseline.epochs=0", "student.phase1_epochs=0",
                                 "student.phase2_epochs=0", "optim.lr=0.5"])
    with pytest.raises(ValueError, match=r"different config; changed: optim\.lr: 0\.01 -> 0\.5"):
        train_triplet(changed, run, resume=True)


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", KDEXPLAIN_PROGRESS="0")
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "kdexplain.cli",
           "train-triplet", str(TINY), f"out_dir={tmp_path}", "name=ddp", "-q"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "ddp"
    summary = __import__("json").loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["ranks_identical"] is True
    env_info = __import__("json").loads((run / "environment.json").read_text())
    assert env_info["world_size"] == 2
    for role in ("teacher", "student", "baseline"):
        assert [e for e, _ in list_checkpoints(run / role)] == [0, 1, 2]
        _, ck = load_checkpoint(list_checkpoints(run / role)[-1][1])
        assert ck["world_size"] == 2 and len(ck["rng"]) == 2
        # 24 images over 2 processes of batch 8: 2 steps per epoch
        assert ck["global_step"] == (2 if role != "student" else 2) * ck["epoch"]
    # the learning rate was scaled linearly with the world size (0.01 x 2)
    rows = _rows(run / "baseline" / "metrics.csv")
    assert float(rows[0]["lr"]) == pytest.approx(0.02)
    assert "run directory" in proc.stdout and proc.stdout.count("run directory") == 1


def test_bad_layer_lists_valid_names(tmp_path, capsys):
    rc = main(["train-triplet", str(TINY), f"out_dir={tmp_path}", "model.layer=fc9"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "layer 'fc9' does not exist" in err and "classifier.0" in err and "fc1=" in err
    assert not (tmp_path / "tiny" / "teacher").exists()
    rc = main(["train-triplet", f"out_dir={tmp_path}", "model.layer=fc9"])  # the quickstart's
    assert rc == 2 and "layer 'fc9' does not exist" in capsys.readouterr().err


def test_unknown_config_key_is_an_error_line(tmp_path, capsys):
    rc = main(["train-triplet", str(TINY), f"out_dir={tmp_path}", "optim.lrate=1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "optim.lrate: unknown key; allowed keys here:" in err and "lr" in err


def test_too_few_classes(tmp_path, capsys):
    rc = main(["train-triplet", str(TINY), f"out_dir={tmp_path}",
               "data.options.classes=[bird]"])
    assert rc == 2
    assert "has 1 class(es); classification needs at least 2" in capsys.readouterr().err


def test_missing_pretrained_file(tmp_path, capsys):
    rc = main(["train-triplet", str(TINY), f"out_dir={tmp_path}",
               "teacher.pretrain_epochs=0", f"teacher.pretrained={tmp_path / 'no.pth'}"])
    assert rc == 2
    assert "no.pth does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrained_teacher_from_file(tmp_path):
    # a teacher's weights from a state-dict file with another head size load, head fresh
    from kdexplain.models import build_model

    src = build_model("kdnet", 7, width=4, hidden=16, dropout=0.1)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    cfg = load_config(TINY, ["teacher.pretrain_epochs=0", f"teacher.pretrained={tmp_path / 'w.pth'}",
                             "teacher.epochs=0", "baseline.epochs=0", "student.phase1_epochs=0",
                             "student.phase2_epochs=0"])
    run = train_triplet(cfg, tmp_path / "p")
    _, ck = load_checkpoint(list_checkpoints(run / "teacher")[0][1])
    assert torch.equal(ck["model"]["features.0.weight"], src.state_dict()["features.0.weight"])
    assert ck["model"]["classifier.6.weight"].shape == (3, 16)


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_error_and_keeps_checkpoints(tmp_path, capsys):
    args = ["train-triplet", str(TINY), f"out_dir={tmp_path}", "name=nan",
            "teacher.pretrain_epochs=0", "teacher.epochs=1", "baseline.epochs=2",
            "baseline.optim.lr=1e30"]
    rc = main(args)
    assert rc == 2
    err = capsys.readouterr().err
    assert "baseline: the train loss became non-finite (NaN or inf) in epoch 1, step" in err
    assert "--resume" in err
    base = tmp_path / "nan" / "baseline"
    assert [e for e, _ in list_checkpoints(base)] == [0]
    model, ck = load_checkpoint(list_checkpoints(base)[0][1])
    assert ck["epoch"] == 0 and all(torch.isfinite(p).all() for p in model.parameters())
    assert [e for e, _ in list_checkpoints(tmp_path / "nan" / "teacher")] == [0, 1]


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
    wa, wb = (torch.load(p, weights_only=False)["model"] for p in (a, b))
    assert all(not torch.equal(wa[k], wb[k]) for k in wa if k.endswith("weight"))


@pytest.mark.slow
def test_seeds_run_into_their_own_folders(tmp_path):
    from kdexplain.train import train_all_seeds

    cfg = load_config(TINY, ["seeds=[3,4]", "teacher.pretrain_epochs=0", "teacher.epochs=0",
                             "baseline.epochs=0", "student.phase1_epochs=0",
                             "student.phase2_epochs=0", f"out_dir={tmp_path}"])
    runs = train_all_seeds(cfg)
    assert runs == [tmp_path / "tiny" / "seed_3", tmp_path / "tiny" / "seed_4"]
    a = torch.load(list_checkpoints(runs[0] / "baseline")[0][1], weights_only=False)
    b = torch.load(list_checkpoints(runs[1] / "baseline")[0][1], weights_only=False)
    assert a["seed"] == 3 and b["seed"] == 4
    assert not torch.equal(a["model"]["features.0.weight"], b["model"]["features.0.weight"])
    assert load_config(runs[1] / "config.yaml").seed == 4
