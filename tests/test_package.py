"""The wheel alone: built from the sources, installed outside the clone, it runs a shipped
config by name from an empty folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    """The wheel (built once from a copy of the sources, so no build/ folder is left in the
    clone), installed with --target into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("kdexplain", "configs", "docs"):
        shutil.copytree(REPO / name, src / name, symlinks=True, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", str(src), "-w", str(tmp / "dist")], check=True, cwd=tmp)
    wheel = next((tmp / "dist").glob("kdexplain-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {p.name for p in (REPO / "configs").glob("*.yaml")}
    assert {n.rsplit("/", 1)[-1] for n in names if n.startswith("kdexplain/configs/")} == shipped
    assert {n.rsplit("/", 1)[-1] for n in names if n.startswith("kdexplain/docs/")} == {
        p.name for p in (REPO / "docs").glob("*.md")}
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, cwd=tmp)
    return site


def _run(site: Path, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1", KDEXPLAIN_PROGRESS="0")
    return subprocess.run([sys.executable, "-m", "kdexplain", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_installed_wheel_runs_tiny_from_an_empty_folder(wheel_site, tmp_path):
    text = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1)
    where = _run(wheel_site, tmp_path, "docs")  # the package found is the wheel's, not the clone
    assert where.returncode == 0 and str(wheel_site) in where.stdout and str(REPO) not in where.stdout
    assert _run(wheel_site, tmp_path, "--version").stdout.strip() == f"kdexplain {version}"
    listed = _run(wheel_site, tmp_path, "configs").stdout
    assert "tiny" in listed and "quickstart" in listed
    proc = _run(wheel_site, tmp_path, "run", "tiny")
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = tmp_path / "reports" / "tiny" / "index.md"
    assert index.is_file() and proc.stdout.strip().endswith(f"report: {Path('reports/tiny/index.md')}")
    assert str(wheel_site) not in index.read_text()  # no machine path of the install
