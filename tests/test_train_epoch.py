"""One training epoch (kdexplain/train/epoch.py): a non-finite loss stops the run with one
clear line and keeps the checkpoints saved before it."""

from __future__ import annotations

import pytest
import torch

from kdexplain.cli import main
from kdexplain.train import list_checkpoints, load_checkpoint
from tests.train_common import TINY


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
