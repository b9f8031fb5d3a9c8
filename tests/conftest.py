"""Test-wide settings: built datasets go to a temporary folder, never into the repository."""

from __future__ import annotations

import os

import pytest


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
