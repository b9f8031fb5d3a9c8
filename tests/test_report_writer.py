"""The report writer (kdexplain/report/writer.py): every file and nothing half written, an
index.md that reads top to bottom, reports without a baseline and with the threshold curve."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kdexplain.report import write_report
from tests.report_common import PNG_MAGIC
from tests.report_common import tiny_analysis as _analysis


def test_report_writes_every_file_and_nothing_half_written(report):
    _, out, paths = report
    expected = {"concept_metrics.csv", "concept_metrics.md", "concept_metrics.tex",
                "hypotheses.csv", "hypotheses.md", "hypotheses.tex", "per_image.csv",
                "trajectories.csv", "images.csv", "index.md", "summary.json",
                "per_seed.csv", "per_seed.md", "distance_drivers.csv",
                "figures/entropy_heatmaps.png", "figures/concepts_vs_distance.png",
                "figures/peak_distance.png"}
    assert set(paths) == expected
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert on_disk == expected  # no temporary file left behind


def test_index_reads_top_to_bottom(report):
    a, out, _ = report
    text = (out / "index.md").read_text()
    # the answer first: the verdicts, what limits them, the seed-level (accuracy) table;
    # the full configuration at the end
    order = ["# Tiny report", "## Hypotheses: verdicts", "What limits these verdicts:",
             "## Seed-level table", "## Concept metrics", "## Figures", "## Images used",
             "## What was run", "name: tiny", "## How to reproduce"]
    positions = [text.index(h) for h in order]
    assert positions == sorted(positions)
    top = "\n".join(text.splitlines()[:40])
    assert "Verdict:" in top and "Tests that carry the verdicts" in top
    assert "- Seeds: one training run" in top  # tiny has one seed
    assert "- Estimator: the entropies as given; b was set for the reference" in top
    assert "- Threshold: b = 0.2 nats only (not varied in this report)." in top
    assert "name: tiny" in text  # the config
    assert "kdexplain run configs/tiny.yaml" in text
    for i, name in enumerate(("entropy_heatmaps", "concepts_vs_distance", "peak_distance"), 1):
        assert f"![figure {i}](figures/{name}.png)" in text and f"*Figure {i}.*" in text
    for key in a.used_keys[0]["student"]:
        assert f"`{key}`" in text
    assert "no usable signal (D0 = 0) at epoch 4" in text  # why scene_05 is not used
    for v in a.verdicts.itertuples():
        assert f"Verdict: {v.verdict}" in text
    summary = json.loads((out / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert summary["used_images"]["0"]["student"] == a.used_keys[0]["student"]
    assert len(summary["verdicts"]) == 3


def test_report_without_baseline_and_several_seeds(tmp_path):
    a = _analysis(roles=("teacher", "student"), seeds=(1, 2))
    assert a.tests.empty and a.notes
    paths = write_report(a, tmp_path)
    text = paths["index.md"].read_text()
    assert "No hypothesis was tested" in text
    df = pd.read_csv(paths["concept_metrics.csv"])
    assert df["label"].tolist() == ["T", "S"] and (df["n_seeds"] == 2).all()
    assert "over the 2 seeds" in paths["concept_metrics.md"].read_text()


def test_report_with_the_threshold_curve(tmp_path):
    from kdexplain.concepts import threshold_curve

    a = _analysis(seeds=(0, 1))
    curve = threshold_curve(a.runs, a.settings, thresholds=(0.1, 0.3))
    paths = write_report(a, tmp_path, threshold_curve=curve)
    for name in ("threshold_curve.csv", "threshold_curve.md", "figures/threshold_curve.png"):
        assert paths[name].is_file()
    assert paths["figures/threshold_curve.png"].read_bytes()[:8] == PNG_MAGIC
    csv = pd.read_csv(paths["threshold_curve.csv"])
    assert sorted(set(csv["b"])) == [0.1, 0.2, 0.3]
    assert len(csv) == 3 * 6  # every verdict-carrying metric at every b
    text = paths["index.md"].read_text()
    section = "## How the verdicts move over the concept threshold b"
    assert text.index("## Seed-level table") < text.index(section) < text.index("## Figures")
    # two seeds: the smallest exact p (0.5) cannot reach alpha, and 6 seeds can
    assert ("- Seeds: 2 training runs; the exact sign-flip test cannot give p below 0.500, "
            "so no verdict can reach alpha = 0.05 here (it takes 6 seeds)") in text
    assert text.index("## Concept metrics") < text.index("## Within-run diagnostics") \
        < text.index(section)
    assert "b = 0.1, 0.2, 0.3 nats" in text and "0.2 (this report)" in text
    fragile = curve.robustness["fragile"].any()
    assert ("Fragile (the verdict changes" in text) == fragile
    assert ("No verdict changes over this range" in text) == (not fragile)
    limits = text.split("## Seed-level")[0]
    assert ("- Threshold: b = 0.2 nats; between b = 0.1 and 0.3 no verdict changes."
            in limits) == (not fragile)
    section = "## What drives the direction of D_mean"
    assert text.index("## How the verdicts move") < text.index(section) < text.index("## Fig")
    assert "seeds level, 2 pairs" in text and "d(m^) / d(M)" in text
