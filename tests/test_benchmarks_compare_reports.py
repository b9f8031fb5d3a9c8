"""benchmarks/compare_reports.py: which variants a study folder holds."""

from __future__ import annotations

import json

import pytest

from tests.benchmarks_common import load_benchmark


def _module():
    return load_benchmark("compare_reports")


def test_study_variants_from_the_index_or_the_report_folders(tmp_path):
    mod = _module()
    study = tmp_path / "study"
    for v in ("b-variant", "a-variant"):
        (study / v).mkdir(parents=True)
        (study / v / "summary.json").write_text("{}")
    (study / "figures").mkdir()  # not a report
    assert mod.study_variants(study) == ["a-variant", "b-variant"]
    (study / "index.json").write_text(json.dumps({"variants": ["b-variant"]}))
    assert mod.study_variants(study) == ["b-variant"]


def test_a_folder_without_reports_is_one_error_line(tmp_path):
    with pytest.raises(SystemExit, match="error: .* is no study report"):
        _module().study_variants(tmp_path / "missing")
