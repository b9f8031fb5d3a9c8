"""Distributed training (kdexplain/train/distributed.py): two gloo processes under torchrun
give one run, identical ranks, and the learning rate scaled with the world size."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdexplain.train import list_checkpoints, load_checkpoint
from tests.train_common import REPO, TINY
from tests.train_common import rows as _rows


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
