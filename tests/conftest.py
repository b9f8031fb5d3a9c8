"""Test-wide settings: built datasets go to a temporary folder, never into the repository;
the inputs that cost seconds to make (a trained tiny run, a written report) are made once
per session and shared by the files that read them (each copies a run before changing it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped on a machine without a CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _data_root(tmp_path_factory):
    """One scenes cache per test session (subprocesses inherit it through the environment)."""
    old = os.environ.get("KDEXPLAIN_DATA_ROOT")
    os.environ["KDEXPLAIN_DATA_ROOT"] = str(tmp_path_factory.mktemp("kdexplain-data"))
    os.environ.setdefault("KDEXPLAIN_PROGRESS", "0")
    yield
    if old is None:
        os.environ.pop("KDEXPLAIN_DATA_ROOT", None)
    else:
        os.environ["KDEXPLAIN_DATA_ROOT"] = old


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global random state (torch, NumPy, random), so a
    test's draws do not depend on which tests ran before it, and a CI failure reproduces."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The tiny pipeline config (tests/pipeline_common.py) trained once through the CLI, for
    the sweep and report tests (each copies it before it changes anything)."""
    from kdexplain.cli import main
    from tests.pipeline_common import write_config as _write_config

    tmp = tmp_path_factory.mktemp("pipe")
    cfg = _write_config(tmp)
    assert main(["train-triplet", str(cfg), "--quiet"]) == 0
    return tmp / "runs" / "tinypipe"


@pytest.fixture(scope="session")
def report(tmp_path_factory):
    """The tiny analysis of tests/report_common.py written once as a report, for the writer,
    table and figure tests: ``(analysis, out_dir, paths)``."""
    import numpy as np

    from kdexplain.report import write_report
    from tests.report_common import N
    from tests.report_common import tiny_analysis as _analysis

    out = tmp_path_factory.mktemp("report")
    a = _analysis()
    images = np.random.default_rng(1).random((N, 3, 32, 32))
    paths = write_report(a, out, images=images, config={"name": "tiny", "seed": 0},
                         title="Tiny report", reproduce=["kdexplain run configs/tiny.yaml"])
    return a, out, paths


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config trained once through the CLI (every epoch kept)."""
    from kdexplain.cli import main
    from tests.train_common import TINY

    out = tmp_path_factory.mktemp("runs")
    rc = main(["train-triplet", str(TINY), f"out_dir={out}", "name=e2e", "-q"])
    assert rc == 0
    return out / "e2e"
