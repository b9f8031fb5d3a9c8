"""The sweep (kdexplain/pipeline/sweeps.py) on a tiny trained run: every unit written,
resume after an interruption, settings that change the units refused, two processes."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
import torch
import yaml

from kdexplain.pipeline import load_sweep, sweep
from tests.pipeline_common import copy_without_sweep as _copy_without_sweep
from tests.pipeline_common import units as _units

sweep_module = importlib.import_module("kdexplain.pipeline.sweeps")


@pytest.mark.slow
def test_sweep_writes_every_unit_and_loads(trained_run, tmp_path):
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    sweep(run)
    units = _units(run)
    assert len(units) == 9  # 3 roles x 3 checkpoints
    data = load_sweep(run)
    assert set(data.entropy) == {"teacher", "student", "baseline"}
    assert data.entropy["student"].shape == (3, 4, 8, 8)
    assert data.foreground.shape == (4, 8, 8)
    assert list(data.epochs["baseline"]) == [0, 1, 2]
    assert data.distance["student"][0] == 0 and (data.distance["student"][1:] > 0).all()


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_recomputing(trained_run, tmp_path, monkeypatch):
    full = _copy_without_sweep(trained_run, tmp_path / "full")
    sweep(full, checkpoints_per_call=2)
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    real = sweep_module.quantify
    calls = {"n": 0}

    def dies_on_second_call(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "quantify", dies_on_second_call)
    with pytest.raises(KeyboardInterrupt):
        sweep(run, checkpoints_per_call=2)
    done = sorted((run / "sweep").glob("*/epoch_*.pt"))
    assert len(done) == 2  # the first call's two checkpoints, nothing half-written
    assert not list((run / "sweep").rglob("*.tmp"))
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_sweep(run)

    computed = []

    def counting(models, *args, **kwargs):
        computed.append(len(models))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "quantify", counting)
    sweep(run, checkpoints_per_call=2)
    assert sum(computed) == 7  # only the 7 missing checkpoints
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    a, b = _units(run), _units(full)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.slow
def test_sweep_refuses_other_settings(trained_run, tmp_path):
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    sweep(run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["analysis"]["alpha"] = 0.01  # report settings: the sweep stays valid
    cfg["analysis"]["concept_threshold"] = 0.3
    cfg["analysis"]["baseline_entropy"] = "per_image"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    sweep(run)
    cfg["analysis"]["samples"] = 8
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="other analysis settings"):
        sweep(run)


@pytest.mark.slow
def test_two_process_sweep_equals_single_process(trained_run, tmp_path):
    single = _copy_without_sweep(trained_run, tmp_path / "single")
    sharded = _copy_without_sweep(trained_run, tmp_path / "sharded")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KDEXPLAIN_PROGRESS": "0"}
    subprocess.run([sys.executable, "-m", "kdexplain.cli", "sweep", str(single)], env=env,
                   check=True, capture_output=True, timeout=300)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "kdexplain.cli", "sweep", str(sharded)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _units(single), _units(sharded)
    assert len(a) == 9 and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_the_fingerprint_holds_the_preset_as_resolved(monkeypatch):
    # a kdexplain whose preset means something else (another precision, say) must not add
    # its units to a sweep made by another: the fingerprint carries the resolved settings
    from dataclasses import replace

    from kdexplain.config import AnalysisConfig
    from kdexplain.pipeline import sweeps
    from kdexplain.quantification import settings as qs

    a = AnalysisConfig()
    before = sweeps._fingerprint(a, "features.9", 0)
    assert sweeps._fingerprint(a, "features.9", 0) == before
    monkeypatch.setitem(qs.PRESETS, "default", replace(qs.PRESETS["default"], precision=0.05))
    assert sweeps._fingerprint(a, "features.9", 0) != before
