"""`kdexplain run CONFIG --dry-run`: validation without writing, counts, a measured estimate."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from kdexplain.cli import main


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_dry_run_of_tiny_counts_epochs_and_units_and_writes_nothing(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)  # the shipped config by name, from a folder without configs/
    assert main(["run", "tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert _files(tmp_path) == []  # no runs/, reports/, data cache
    # by hand from configs/tiny.yaml: teacher 1 + 2 epochs, baseline 2, student 2 + 1;
    # checkpoints [0, 1, 2] of each analysed phase (2 epochs) = 3 per model; 4 val images;
    # default preset with steps 5, samples 4: 64 (D0) + 10 (probes) + 5 x 4 noise passes
    assert "training epochs: teacher pre-training 1, teacher 2, baseline 2, student 3 " \
           "(total 8; 24 training images)" in out
    assert "teacher 3, student 3, baseline 3 (total 9), each on 4 images, 94 noise passes" in out
    assert re.search(r"estimate on cpu, \d+ thread\(s\): training .+ quantification .+ total",
                     out)
    assert "nothing was written" in out


def test_dry_run_refuses_what_the_run_would_fail_on(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for override, message in (("model.layer=fc9", "layer 'fc9' does not exist"),
                              ("analysis.checkpoints=[0,7]", "asks for epochs [7]"),
                              ("analysis.grid=64", "analysis.grid 64 exceeds"),
                              ("analysis.preset=newton", "")):
        rc = main(["run", "tiny", override, "--dry-run"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and message in err, (override, err)
    assert _files(tmp_path) == []


@pytest.mark.slow
def test_dry_run_of_the_paper_config_on_a_fabricated_cub(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from data_common import make_cub

    root = make_cub(tmp_path / "cub")
    config = Path(__file__).parents[1] / "configs" / "vgg16_cub.yaml"
    assert main(["run", str(config), f"data.root={root}", f"out_dir={tmp_path / 'runs'}",
                 "--report-dir", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "layer features.28" in out
    assert "teacher pre-training 0, teacher 150, baseline 150, student 300 (total 600" in out
    # 15 paper checkpoints per model; the reference preset: 96 + 80 x 96 passes per image
    assert "teacher 15, student 15, baseline 15 (total 45)" in out and "7776 noise passes" in out
    assert re.search(r"estimate on cpu.*quantification [\d,.]+ (days|h)", out)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "r").exists()
