"""The report's figures (kdexplain/report/figures.py): valid PNGs, errors that speak to the
user, the cell-to-pixel upsampling, and no text cut off at a figure's edge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdexplain.report import plot_entropy_heatmaps, upsample_nearest, write_report
from tests.report_common import PNG_MAGIC, N
from tests.report_common import tiny_analysis as _analysis


def test_figures_are_valid_pngs(report):
    _, out, _ = report
    for name in ("entropy_heatmaps", "concepts_vs_distance", "peak_distance"):
        path = out / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.size[0] >= 400 and im.size[1] >= 300


def test_heatmap_errors_speak_to_the_user(tmp_path):
    a = _analysis()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        plot_entropy_heatmaps(a, tmp_path / "h.png", images=np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="not used by every model"):
        plot_entropy_heatmaps(a, tmp_path / "h.png", keys=["scene_05"])
    path = plot_entropy_heatmaps(a, tmp_path / "h.png", keys=["scene_01"])
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_upsample_nearest_matches_cell_map():
    grid = np.arange(4).reshape(2, 2)
    up = upsample_nearest(grid, (4, 6))
    np.testing.assert_array_equal(up, [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2)


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
