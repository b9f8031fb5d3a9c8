"""The one way reports print numbers and tables and save figures (kdexplain.utils.render)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from kdexplain.utils.render import (
    ENTROPY_CMAP,
    ENTROPY_LABEL,
    entropy_colorbar,
    format_number,
    format_p,
    format_percent,
    format_pm,
    markdown_table,
    save_png,
    show_entropy,
    text_table,
)


def test_format_number_golden():
    assert format_number(0.012345) == "0.0123"
    assert format_number(4.5678) == "4.57"
    assert format_number(78.91) == "78.9"
    assert format_number(1234.4) == "1234"  # not 1.23e+03
    assert format_number(-0.5, 2) == "-0.5"
    assert format_number(np.float32(2.0)) == "2"
    assert format_number(float("nan")) == "n/a"
    assert format_number(None) == "n/a"
    assert format_number(float("inf")) == "inf"
    assert format_number(-np.inf) == "-inf"


def test_format_p_golden():
    assert format_p(4.9e-5) == "4.9e-05"
    assert format_p(0.000999) == "1.0e-03"
    assert format_p(0.001) == "0.001"
    assert format_p(0.0321) == "0.032"
    assert format_p(1.0) == "1.000"
    assert format_p(float("nan")) == "n/a"
    assert format_p(None) == "n/a"


def test_format_percent_and_pm_golden():
    assert format_percent(0.1234) == "12.3%"
    assert format_percent(1.0, 0) == "100%"
    assert format_percent(float("nan")) == "n/a"
    assert format_pm(12.34, 2.13) == "12.3 ± 2.1"
    assert format_pm(0.5648, 0.0531) == "0.565 ± 0.053"
    assert format_pm(3.0, float("nan")) == "3.00"
    assert format_pm(float("nan"), 1.0) == "n/a"


def test_markdown_table_of_a_2x2_frame():
    frame = pd.DataFrame({"metric": ["foreground concepts", "p"], "value": ["0.500", "12"]})
    assert markdown_table(frame, align="lr") == (
        "| metric              |   value |\n"
        "|:--------------------|--------:|\n"
        "| foreground concepts |   0.500 |\n"
        "| p                   |      12 |")
    assert markdown_table(frame).splitlines()[1] == "|:--------------------|:--------|"
    with pytest.raises(ValueError, match="one of l, r, c per column"):
        markdown_table(frame, align="l")


def test_text_table_of_a_2x2_frame():
    frame = pd.DataFrame({"metric": ["foreground concepts", "p"], "value": ["0.500", "12"]})
    assert text_table(frame, align="lr") == (
        "metric                 value\n"
        "-------------------  -------\n"
        "foreground concepts    0.500\n"
        "p                         12")
    with pytest.raises(ValueError, match="one of l, r, c per column"):
        text_table(frame, align="lrr")


def test_format_summary_one_row_per_model_and_phase():
    from kdexplain.train import format_summary
    summary = {"run_dir": "runs/x", "layer": "fc1", "seed": 0, "world_size": 1,
               "device": "cpu", "models": {
                   "teacher": {"phases": [{"phase": "main", "epochs": 8, "val_acc": 0.9123,
                                           "val_loss": 0.31234, "images_per_second": 12345.6,
                                           "seconds": 101.25}]},
                   "student": {"phases": [{"phase": "main", "epochs": 10, "val_acc": None,
                                           "val_loss": None, "images_per_second": None,
                                           "seconds": 5.0}]}}}
    assert format_summary(summary).splitlines() == [
        "run runs/x (layer fc1, seed 0, 1 process(es) on cpu)",
        "model    phase      epochs    val acc    val loss    train img/s    seconds",
        "-------  -------  --------  ---------  ----------  -------------  ---------",
        "teacher  main            8      91.2%      0.3123         12,346      101.2",
        "student  main           10          -           -              -        5.0"]


def test_save_png_writes_a_png(tmp_path):
    fig = Figure(figsize=(2, 2))
    ax = fig.subplots()
    im = show_entropy(ax, np.arange(16.0).reshape(4, 4), vmin=0, vmax=15)
    cb = entropy_colorbar(fig, im, ax=ax)
    assert im.get_cmap().name == ENTROPY_CMAP == "magma_r"
    assert cb.ax.get_ylabel() == ENTROPY_LABEL
    path = save_png(fig, tmp_path / "sub" / "f.png", dpi=40)
    assert path == tmp_path / "sub" / "f.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "sub").glob("*.tmp*"))  # nothing left of the atomic write


def test_save_png_closes_a_pyplot_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")  # tests may pick the backend; the library never does
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    save_png(fig, tmp_path / "p.png", dpi=30)
    assert not plt.fignum_exists(fig.number)


def test_format_pm():
    assert format_pm(12.34, 2.13) == "12.3 ± 2.1"
    assert format_pm(0.5648, 0.0531) == "0.565 ± 0.053"
    assert format_pm(153.0, 21.0) == "153 ± 21"
    assert format_pm(3.0, float("nan")) == "3.00"
    assert format_pm(float("nan"), 1.0) == "n/a"
    assert format_pm(5.0, 0.0) == "5.00 ± 0.00"
