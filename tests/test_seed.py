"""Seeding and torch's determinism switches: set for a block, the caller's restored after."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdexplain.config import load_config
from kdexplain.utils import deterministic, flush_denormals, seed_everything

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _flags() -> tuple[bool, bool, bool, bool]:
    cudnn = torch.backends.cudnn
    return (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(), cudnn.deterministic,
            cudnn.benchmark)


@pytest.fixture
def caller_flags():
    """A caller's own, unusual settings (strict determinism, cuDNN autotuning), put back
    to the process's after the test."""
    before = _flags()
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = True
    yield _flags()
    algorithms, warn_only, torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before
    torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)


def test_seed_everything_touches_no_switch(caller_flags):
    seed_everything(3)
    a = torch.rand(2)
    seed_everything(3)
    assert torch.equal(a, torch.rand(2))
    assert _flags() == caller_flags


@pytest.mark.parametrize("enabled", [True, False])
def test_deterministic_sets_the_switches_and_restores_them(caller_flags, enabled):
    with deterministic(enabled):
        assert _flags() == ((True, True, True, False) if enabled else (False, False, False, True))
    assert _flags() == caller_flags


def test_deterministic_restores_the_switches_after_an_exception(caller_flags):
    with pytest.raises(KeyError), deterministic(True):
        raise KeyError("boom")
    assert _flags() == caller_flags


@pytest.mark.slow
def test_training_leaves_the_switches_as_it_found_them(caller_flags, tmp_path):
    from kdexplain.train import train_triplet

    cfg = load_config(TINY, ["teacher.pretrain_epochs=0", "teacher.epochs=1", "baseline.epochs=0",
                             "student.phase1_epochs=0", "student.phase2_epochs=0"])
    run = train_triplet(cfg, tmp_path / "r")
    assert _flags() == caller_flags
    with pytest.raises(ValueError, match="already holds a run"):  # raised inside training
        train_triplet(cfg, run)
    assert _flags() == caller_flags


def test_flush_denormals_zeroes_denormals_in_the_block_and_stops_after():
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(False)
    assert (tiny * 1.0).item() != 0.0
    with flush_denormals():
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() != 0.0
    with pytest.raises(KeyError), flush_denormals():
        raise KeyError("boom")
    assert (tiny * 1.0).item() != 0.0
