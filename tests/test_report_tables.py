"""The report's tables (kdexplain/report/tables.py): the concept metrics as CSV, Markdown and
LaTeX, and the hypotheses table."""

from __future__ import annotations

import pandas as pd
import pytest

from kdexplain.report import concept_metrics_latex, concept_metrics_markdown

METRICS = ("N_fg", "N_bg", "fg_ratio", "D_mean", "D_std", "rho")


def test_concept_metrics_csv_rows_and_columns(report):
    a, out, _ = report
    df = pd.read_csv(out / "concept_metrics.csv")
    assert df["label"].tolist() == ["T", "S", "B"]
    assert df["n_images"].tolist() == [5, 5, 5]  # image 5 dropped for the pair, and for T
    for m in (*METRICS, "D_var"):
        for suffix in ("mean", "spread", "sd_images", "sd_seeds", "se", "ci_low", "ci_high"):
            assert f"{m}_{suffix}" in df.columns
    s = a.summary.set_index(["role", "metric"])
    assert df.loc[1, "N_fg_mean"] == pytest.approx(s.loc[("student", "N_fg"), "value"])
    assert (df["N_fg_ci_low"] <= df["N_fg_mean"]).all()
    assert (df["N_fg_mean"] <= df["N_fg_ci_high"]).all()
    assert df["D_std_mean"].to_numpy() ** 2 == pytest.approx(df["D_var_mean"].to_numpy())
    assert df["count_epoch"].tolist() == [6, 6, 6]


def test_concept_metrics_markdown_and_latex(report):
    a, out, _ = report
    md = (out / "concept_metrics.md").read_text()
    assert md == concept_metrics_markdown(a)
    header = md.splitlines()[0]
    assert all(m in header for m in METRICS)
    assert "foreground concepts (N_fg)" in header  # words first, then the CSV's name
    rows = [line for line in md.splitlines() if line.startswith("| ") and "±" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["T (teacher)", "S (student)",
                                                        "B (baseline)"]
    assert all(r.count("±") == 6 for r in rows)
    assert "standard deviation over images" in md
    tex = (out / "concept_metrics.tex").read_text()
    assert tex == concept_metrics_latex(a)
    assert "\\begin{tabular}{lrrrrrr}" in tex and "\\toprule" in tex
    body = [line for line in tex.splitlines() if line.startswith(("T (", "S (", "B ("))]
    assert len(body) == 3 and all(line.count("$\\pm$") == 6 for line in body)
    assert all(line.endswith("\\\\") for line in body)


def test_hypotheses_table(report):
    _, out, _ = report
    h = pd.read_csv(out / "hypotheses.csv")
    assert h["metric"].tolist() == ["N_fg", "N_bg", "fg_ratio", "D_mean", "D_std", "rho"]
    assert h["hypothesis"].tolist() == [1, 1, 1, 2, 2, 3]
    assert h["direction"].tolist() == ["S > B", "S < B", "S > B", "S < B", "S < B", "S > B"]
    for col in ("S", "B", "effect_size", "p_value", "p_holm", "verdict", "n_pairs"):
        assert col in h.columns
    assert set(h["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    assert (h["n_pairs"] == 5).all()
    assert (h["p_holm"] >= h["p_value"] - 1e-12).all()
    md = (out / "hypotheses.md").read_text()
    assert md.count("**") >= 2 * (6 + 3)  # every verdict in bold
    tex = (out / "hypotheses.tex").read_text()
    assert "Hypothesis 3:" in tex and "\\bottomrule" in tex
