"""The teacher weights that ship with kdexplain (kdexplain.weights) and how they are made."""

from __future__ import annotations

import json

import pytest
import torch

from kdexplain.config import load_config
from kdexplain.models import build_model
from kdexplain.train.shipped import make_teacher
from kdexplain.train.triplet import train_teacher
from kdexplain.weights import resolve_weights, sha256_of, shipped_names


def test_shipped_teacher_matches_its_record_and_loads_safely():
    assert "scenes_kdnet16" in shipped_names()
    pt = resolve_weights("kdexplain:scenes_kdnet16")
    record = json.loads(pt.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["sha256"] == sha256_of(pt)
    state = torch.load(pt, weights_only=True)
    model = build_model(record["arch"], record["num_classes"], **record["model_kwargs"])
    model.load_state_dict(state)  # strict: every tensor fits
    assert record["command"].startswith("python -m kdexplain.train.shipped make")
    last = [e for e in record["epochs"] if e["phase"] == "pretrain"][-1]
    assert record["source_val_acc"] == last["val_acc"] and last["epoch"] == record["pretrain_epochs"]
    assert record["config"]["teacher"]["pretrain_epochs"] == record["pretrain_epochs"]


def test_unknown_shipped_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="scenes_kdnet16"):
        resolve_weights("kdexplain:no_such_teacher")
    assert str(resolve_weights("some/file.pt")) == "some/file.pt"


@pytest.mark.slow
def test_make_teacher_recreates_a_short_version(tmp_path):
    """The same code path as the shipped file, with tiny settings: pre-train, export, then a
    config loads the export as its teacher.pretrained and fine-tunes it."""
    out = tmp_path / "weights" / "tiny_teacher"
    pt = make_teacher("configs/tiny.yaml", out, tmp_path / "run",
                      [f"out_dir={tmp_path}", "teacher.epochs=0"])
    record = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["sha256"] == sha256_of(pt) and record["pretrain_epochs"] == 1
    assert [e["phase"] for e in record["epochs"]].count("pretrain") == 2  # epochs 0 and 1
    state = torch.load(pt, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    # exporting again is byte-identical (the run is not retrained)
    again = make_teacher("configs/tiny.yaml", out, tmp_path / "run",
                         [f"out_dir={tmp_path}", "teacher.epochs=0"])
    assert sha256_of(again) == record["sha256"]
    cfg = load_config("configs/tiny.yaml", [f"teacher.pretrained={pt}", "teacher.pretrain_epochs=0",
                                            f"out_dir={tmp_path}"])
    run = train_teacher(cfg, tmp_path / "finetuned")
    first = torch.load(run / "teacher" / "checkpoints" / "epoch_0000.pt", weights_only=True)
    body = {k: v for k, v in state.items() if not k.startswith("classifier.6")}
    for k, v in body.items():
        assert torch.equal(first["model"][k], v), k
