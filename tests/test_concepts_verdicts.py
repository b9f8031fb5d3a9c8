"""kdexplain.concepts.verdicts: Holm's correction and the verdict rule on constructed p-values."""

from __future__ import annotations

import numpy as np
import pytest

from kdexplain.concepts import (
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLDS,
    holm,
    hypothesis_verdict,
    metric_verdict,
)


def test_holm():
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    out = holm(np.array([0.2, np.nan, 0.9]))
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.4) and out[2] == pytest.approx(0.9)


def test_hypothesis_verdict_rule():
    g, le = "greater", "less"
    assert hypothesis_verdict([0.01, 0.02], [1, -1], [g, le]) == HOLDS
    # one metric holds, the other not significant: inconclusive (intersection-union)
    assert hypothesis_verdict([0.01, 0.5], [1, 1], [g, le]) == INCONCLUSIVE
    # none holds, one strongly the other way (survives Holm): does not hold
    assert hypothesis_verdict([0.001, 0.5], [-1, 1], [g, le]) == NOT_HOLDS
    # the other way but not after Holm (0.04 * 2 = 0.08): inconclusive
    assert hypothesis_verdict([0.04, 0.5], [-1, 1], [g, le]) == INCONCLUSIVE
    # mixed evidence: one holds, one significant the other way
    assert hypothesis_verdict([0.001, 0.001], [1, 1], [g, le]) == INCONCLUSIVE
    assert hypothesis_verdict([], [], []) == INCONCLUSIVE
    with pytest.raises(ValueError):
        metric_verdict(0.01, 1, "bigger")
