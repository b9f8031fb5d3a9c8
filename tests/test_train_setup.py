"""Setting up a run (kdexplain/train/setup.py): the layer, the class count and a pretrained
teacher's file are checked before anything is written; a teacher with another head loads."""

from __future__ import annotations

import pytest
import torch

from kdexplain.cli import main
from kdexplain.config import load_config
from kdexplain.train import list_checkpoints, load_checkpoint, train_triplet
from tests.train_common import TINY


def test_bad_layer_lists_valid_names(tmp_path, capsys):
    rc = main(["train-triplet", str(TINY), f"out_dir={tmp_path}", "model.layer=fc9"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "layer 'fc9' does not exist" in err and "classifier.0" in err and "fc1=" in err
    assert not (tmp_path / "tiny" / "teacher").exists()
    rc = main(["train-triplet", f"out_dir={tmp_path}", "model.layer=fc9"])  # the quickstart's
    assert rc == 2 and "layer 'fc9' does not exist" in capsys.readouterr().err


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
