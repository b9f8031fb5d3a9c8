"""kdexplain.concepts.threshold: the verdicts over a range of concept thresholds b
(docs/method.md section 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kdexplain.concepts import ConceptSettings, analyze_concepts
from tests.concepts_common import G
from tests.concepts_common import run_entropies as _run


def _drop_grids(drop: float, n: int) -> np.ndarray:
    """Background at exactly -3 nats, the 2x2 foreground ``drop`` nats lower, at every
    checkpoint: a foreground cell is a concept exactly when b < drop."""
    e = np.full((3, n, G, G), -3.0)
    e[:, :, :2, :2] -= drop
    return e


def test_threshold_curve_finds_a_verdict_that_flips_with_b():
    from kdexplain.concepts import threshold_curve

    n = 3
    fg = np.zeros((n, G, G), bool)
    fg[:, :2, :2] = True
    # S's foreground is 0.15 below the background, B's 0.3: both hold 4 foreground concepts
    # at b = 0.1, only B at b = 0.2 and 0.25, neither at b = 0.35
    runs = [_run(_drop_grids(0.15, n), _drop_grids(0.3, n), fg, seed=s) for s in range(7)]
    settings = ConceptSettings(n_resamples=200)
    curve = threshold_curve(runs, settings, thresholds=(0.1, 0.25, 0.35))
    assert curve.thresholds == [0.1, 0.2, 0.25, 0.35]  # the report's own b is added
    t = curve.tests.set_index(["b", "metric"])
    assert (t["level"] == "seeds").all() and (t["n_pairs"] == 7).all()
    assert t.loc[(0.1, "N_fg"), "diff"] == 0 and t.loc[(0.1, "N_fg"), "p_value"] == 1
    for b in (0.2, 0.25):
        assert t.loc[(b, "N_fg"), "S"] == 0 and t.loc[(b, "N_fg"), "B"] == 4
        assert t.loc[(b, "N_fg"), "p_value"] == pytest.approx(2 / 2**7)  # exact sign flip
        assert t.loc[(b, "N_fg"), "verdict"] == "does not hold"
    assert t.loc[(0.35, "N_fg"), "diff"] == 0
    v = curve.verdicts.set_index(["b", "hypothesis"])["verdict"]
    assert v[(0.1, 1)] == "inconclusive" and v[(0.2, 1)] == "does not hold"
    assert v[(0.35, 1)] == "inconclusive"
    st = curve.robustness.set_index("hypothesis")
    assert st.loc[1, "fragile"] and st.loc[1, "verdicts"] == "inconclusive / does not hold"
    assert st.loc[1, "verdict_at_b"] == "does not hold"
    # the stability again from the tests alone (a report's threshold_curve.csv), seeds and
    # a single run's image-level rows alike
    from kdexplain.concepts.threshold import robustness_from_tests

    pd.testing.assert_frame_equal(robustness_from_tests(curve.tests, 0.2), curve.robustness)
    one = threshold_curve(runs[:1], settings, thresholds=(0.1, 0.25, 0.35))
    assert (one.tests["level"] == "images").all()
    pd.testing.assert_frame_equal(robustness_from_tests(one.tests, 0.2), one.robustness)
    # the same analysis at b = 0.2 gives the same test row as the curve
    a = analyze_concepts(runs, settings)
    row = a.tests[a.tests["carries_verdict"]].set_index("metric").loc["N_fg"]
    assert row["p_value"] == t.loc[(0.2, "N_fg"), "p_value"]
    assert row["diff_ci_low"] == t.loc[(0.2, "N_fg"), "diff_ci_low"]
    with pytest.raises(ValueError, match="positive"):
        threshold_curve(runs, settings, thresholds=(0.1, -0.2))

