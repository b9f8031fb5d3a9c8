"""Report writers: the files, their rows and columns, valid PNGs, a readable index.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kdexplain.concepts import RunEntropies, analyze_concepts
from kdexplain.report import (
    concept_metrics_latex,
    concept_metrics_markdown,
    format_pm,
    plot_entropy_heatmaps,
    upsample_nearest,
    write_report,
)

G, N, M = 4, 6, 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRICS = ("N_fg", "N_bg", "fg_ratio", "D_mean", "D_std", "rho")


def _analysis(roles=("teacher", "student", "baseline"), seeds=(0,)):
    rng = np.random.default_rng(0)
    fg = np.zeros((N, G, G), bool)
    fg[:, 1:3, 1:4] = True
    runs = []
    for seed in seeds:
        ent = {}
        for k, role in enumerate(roles):
            e = -3.0 + 0.1 * rng.standard_normal((M, N, G, G))
            e[:, :, 1:3, 1:4] -= (0.2 + 0.3 * k) * np.linspace(0, 1, M)[:, None, None, None]
            ent[role] = e
        if "baseline" in ent:
            ent["baseline"][2, 5] = np.nan  # image 5 has no signal for B at epoch 4
        runs.append(RunEntropies(
            entropy=ent, epochs={r: np.array([0, 2, 4, 6]) for r in roles},
            distance={r: np.array([0.0, 0.4, 0.7, 0.9]) for r in roles}, foreground=fg,
            image_keys=[f"scene_{i:02d}" for i in range(N)], seed=seed))
    return analyze_concepts(runs, n_resamples=200, n_permutations=200)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    a = _analysis()
    images = np.random.default_rng(1).random((N, 3, 32, 32))
    paths = write_report(a, out, images=images, config={"name": "tiny", "seed": 0},
                         title="Tiny report", reproduce=["kdexplain run configs/tiny.yaml"])
    return a, out, paths


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


def test_figures_are_valid_pngs(report):
    _, out, _ = report
    for name in ("entropy_heatmaps", "concepts_vs_distance", "peak_distance"):
        path = out / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.size[0] >= 400 and im.size[1] >= 300


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


def test_heatmap_errors_speak_to_the_user(tmp_path):
    a = _analysis()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        plot_entropy_heatmaps(a, tmp_path / "h.png", images=np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="not used by every model"):
        plot_entropy_heatmaps(a, tmp_path / "h.png", keys=["scene_05"])
    path = plot_entropy_heatmaps(a, tmp_path / "h.png", keys=["scene_01"])
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_format_pm():
    assert format_pm(12.34, 2.13) == "12.3 ± 2.1"
    assert format_pm(0.5648, 0.0531) == "0.565 ± 0.053"
    assert format_pm(153.0, 21.0) == "153 ± 21"
    assert format_pm(3.0, float("nan")) == "3.00"
    assert format_pm(float("nan"), 1.0) == "n/a"
    assert format_pm(5.0, 0.0) == "5.00 ± 0.00"


def test_upsample_nearest_matches_cell_map():
    grid = np.arange(4).reshape(2, 2)
    up = upsample_nearest(grid, (4, 6))
    np.testing.assert_array_equal(up, [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2)


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


def _text_outside_canvas(fig) -> list[str]:
    """What of ``fig`` is drawn outside its canvas (cut off in the PNG): each axes whose
    drawn extent (tick labels, axis labels, title, legend) leaves it, and each figure-level
    text (suptitle, ...) that does. Tick labels outside an axis' view are never drawn, so
    the axes' own extent, not every Text object, is what is checked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # runs the layout engine, as savefig does
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()

    def outside(box) -> bool:
        return box.x0 < -0.5 or box.y0 < -0.5 or box.x1 > width + 0.5 or box.y1 > height + 0.5

    bad = [f"axes {ax.get_label() or i}: {ax.get_ylabel() or ax.get_title()}"
           for i, ax in enumerate(fig.axes) if outside(ax.get_tightbbox(renderer))]
    texts = [t for t in fig.texts if t.get_text().strip()]  # the suptitle is one
    return bad + [t.get_text() for t in texts if outside(t.get_window_extent(renderer))]


@pytest.mark.slow
def test_every_figure_keeps_its_text_inside_the_canvas(tmp_path, monkeypatch):
    """Each figure the package makes (report, quantify heatmap, data preview) is checked
    just before it is saved: no label, title or tick text is cut off at the edge."""
    import torch

    import kdexplain.data.preview as preview
    import kdexplain.report.figures as figures
    import kdexplain.utils.render as render
    from kdexplain.concepts import threshold_curve
    from kdexplain.data import build_dataset
    from kdexplain.quantification.plot import plot_entropy_overlay

    checked: dict[str, list[str]] = {}
    real = render.save_png

    def save_checked(fig, path, *args, **kwargs):
        checked[Path(path).name] = _text_outside_canvas(fig)
        return real(fig, path, *args, **kwargs)

    for module in (render, figures, preview):
        monkeypatch.setattr(module, "save_png", save_checked)
    a = _analysis()
    curve = threshold_curve(a.runs, a.settings, thresholds=(0.1, 0.3))
    write_report(a, tmp_path / "r", images=np.random.default_rng(1).random((N, 3, 32, 32)),
                 config={"name": "tiny"}, threshold_curve=curve)
    plot_entropy_overlay(torch.rand(3, 32, 32), torch.rand(4, 4) - 3, tmp_path / "o.png",
                         foreground=torch.ones(32, 32), title="scenes/val/000000  layer fc1")
    ds = build_dataset("scenes", split="val", image_size=32, cache=False,
                       images_per_class=2, classes=["bear", "cow"])
    preview.draw_preview(ds, tmp_path / "p.png", n=4, grid=4)
    expected = {"entropy_heatmaps.png", "concepts_vs_distance.png", "peak_distance.png",
                "threshold_curve.png", "o.png", "p.png"}
    assert expected <= set(checked), sorted(checked)
    assert {name: bad for name, bad in checked.items() if bad} == {}
