"""The training loop (kdexplain/train/loop.py): phase 1 trains up to the layer L, phase 2
only above it, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdexplain.config import load_config
from kdexplain.train import (
    list_checkpoints,
    load_checkpoint,
    train_triplet,
    upstream_parameters,
)
from kdexplain.train.loop import ModelTrainer
from tests.train_common import TINY
from tests.train_common import rows as _rows


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
    a = torch.load(first, weights_only=True)["model"]
    b = torch.load(last, weights_only=True)["model"]
    for name in ("classifier.3.weight", "classifier.6.weight"):
        assert torch.equal(a[name], b[name])
    assert not torch.equal(a["classifier.0.weight"], b["classifier.0.weight"])


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
            ca = torch.load(a / rel, weights_only=True)
            cb = torch.load(b / rel, weights_only=True)
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
