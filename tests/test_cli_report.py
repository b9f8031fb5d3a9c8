"""``kdexplain report`` (kdexplain/cli/report.py): the report of a swept run, its ``--set``
settings checked, a folder that is no run refused."""

from __future__ import annotations

import re

import pytest

from kdexplain.cli import main
from kdexplain.config import ConfigError, parse_config
from tests.pipeline_common import copy_without_sweep as _copy_without_sweep


def test_report_settings_are_checked(tmp_path):
    from kdexplain.cli.report import report_overrides

    assert report_overrides(["alpha=0.01", "analysis.ci_level=0.9"]) == [
        "analysis.alpha=0.01", "analysis.ci_level=0.9"]
    with pytest.raises(ValueError, match="--set grid: not a setting of the report"):
        report_overrides(["grid=8"])
    with pytest.raises(ValueError, match="--set expects key=value"):
        report_overrides(["alpha"])
    with pytest.raises(ConfigError, match="analysis.alpha"):
        parse_config({"analysis": {"alpha": 2}})


@pytest.mark.slow
def test_report_command_writes_the_report(trained_run, tmp_path):
    run = _copy_without_sweep(trained_run, tmp_path / "run")
    assert main(["sweep", str(run)]) == 0
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    for name in ("index.md", "concept_metrics.csv", "concept_metrics.md", "concept_metrics.tex",
                 "hypotheses.csv", "figures/entropy_heatmaps.png"):
        assert (out / name).is_file(), name
    text = (out / "index.md").read_text()
    assert "kdexplain report" in text
    # a report setting from the command line; the sweep is reused as it is
    assert main(["report", str(run), "--out", str(out), "--set", "alpha=0.01",
                 "--set", "analysis.distance=epoch"]) == 0
    text = (out / "index.md").read_text()
    assert "--set alpha=0.01" in text
    # the settings table (cells padded to the column width)
    assert re.search(r"\| `alpha` +\| 0\.01 +\|", text)
    assert re.search(r"\| `distance` +\| epoch +\|", text)


def test_report_on_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
