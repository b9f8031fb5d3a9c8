"""The index of a study's variants (kdexplain/pipeline/study_index.py): each verdict over b
and under each estimator, header lines kept, a folder without index.json refused."""

from __future__ import annotations

import re

import pytest

from kdexplain.cli import main
from tests.pipeline_common import TINY
from tests.pipeline_common import write_config as _write_config


@pytest.mark.slow
def test_study_index_shows_each_verdict_over_b_and_under_each_estimator(tmp_path):
    import json

    from kdexplain.pipeline.study_index import render_variants_index

    cfg = _write_config(tmp_path, name="st", seeds=[0, 1],
                        analysis={**TINY["analysis"], "n_images": 3},
                        variants={"fc": ["model.layer=fc1"],
                                  "soft": ["model.layer=fc1", "student.mode=soft"]})
    out = tmp_path / "reports" / "st"
    assert main(["run", str(cfg), "--report-dir", str(out)]) == 0
    meta = json.loads((out / "index.json").read_text())
    assert meta["variants"] == {"fc": ["model.layer=fc1"],
                                "soft": ["model.layer=fc1", "student.mode=soft"]}
    assert set(meta["seconds"]) == {"fc", "soft"} and meta["n_seeds"] == 2
    assert meta["preset"] == "default"
    index = (out / "index.md").read_text()
    assert "| hypothesis | report: default preset, b = 0.2 | over b = 0.1 ... 0.4 |" in index
    assert re.search(r"\| 1 \| \*\*[a-z ]+\*\* \| (fragile|stable) \(", index)
    assert "subset: reference" not in index
    # a calibration of one variant shows up in the index, next to the report's verdicts
    assert main(["calibrate", str(tmp_path / "runs" / "st" / "fc"), "--n-images", "2",
                 "--checkpoints", "all", "--out", str(out / "fc" / "calibration")]) == 0
    index = (out / "index.md").read_text()
    fc, soft = index.split("## fc\n")[1].split("## soft\n")
    assert "subset: reference, b = 0.2" in fc and "subset: default, b' = " in fc
    cal = json.loads((out / "fc" / "calibration" / "calibration.json").read_text())
    ref = {v["hypothesis"]: v["verdict"] for v in cal["verdicts"]
           if v["estimator"] == "reference preset, b"}
    for h in (1, 2, 3):
        row = next(line for line in fc.splitlines() if line.startswith(f"| {h} |"))
        assert row.split(" | ")[3] == ref[h]
    assert "subset:" not in soft
    # an index.json that holds its header lines (reports/study's) renders them as they are
    meta = json.loads((out / "index.json").read_text())
    meta.update(title="kdexplain study: st", header=[
        "Variants of one experiment, each a report of its own.", "",
        "- Wall time of this session: 12.3 min (fc 6.1 min, soft 6.2 min).", ""])
    (out / "index.json").write_text(json.dumps(meta))
    again = render_variants_index(out).read_text()
    assert again.startswith("# kdexplain study: st\n\nVariants of one experiment, each a "
                            "report of its own.\n\n- Wall time of this session: 12.3 min")
    assert "subset: reference, b = 0.2" in again
    # the preset the study ran (recorded in index.json) names the report's column
    meta.update(preset="paper")
    (out / "index.json").write_text(json.dumps(meta))
    index = render_variants_index(out).read_text()
    assert "| hypothesis | report: paper preset, b = 0.2 |" in index
    assert "the report's column is the paper preset (the reference's descent path" in index
    # without index.json the folder is no study's report folder (0.2 rebuilt it from index.md)
    (out / "index.json").unlink()
    with pytest.raises(FileNotFoundError, match="holds no index.json"):
        render_variants_index(out)
