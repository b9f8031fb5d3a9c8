"""The run folder (kdexplain/train/run_folder.py): a folder that holds a run is not
overwritten, and resuming it with another config is refused with the changed keys."""

from __future__ import annotations

import pytest

from kdexplain.config import load_config
from kdexplain.train import train_triplet
from tests.train_common import TINY


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
