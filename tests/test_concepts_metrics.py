"""docs/method.md section 4 metrics (kdexplain.concepts.metrics) on hand-made entropy grids,
every number computed by hand in tests/concepts_common.py and below."""

from __future__ import annotations

import numpy as np
import pytest

from kdexplain.concepts import (
    background_entropy,
    concept_cells,
    count_concepts,
    distance_spread,
    effective_images,
    foreground_ratio,
    model_concepts,
    peak_checkpoint,
    peak_distance,
    stability,
    usable_images,
)
from tests.concepts_common import DIST, EPOCHS, G
from tests.concepts_common import hand_entropy as _entropy
from tests.concepts_common import hand_foreground as _foreground


def test_background_entropy_pooled_is_mean_of_image_means():
    h = background_entropy(_entropy(), _foreground(), "pooled")
    assert h.shape == (3, 2)
    np.testing.assert_allclose(h[:, 0], [-2.975, -3.025, -3.025])
    np.testing.assert_allclose(h[:, 1], h[:, 0])
    # not the cell-weighted pool, (-36.3 - 23.4) / 20 = -2.985
    assert not np.isclose(h[0, 0], -2.985)


def test_background_entropy_per_image():
    h = background_entropy(_entropy(), _foreground(), "per_image")
    np.testing.assert_allclose(h, [[-3.025, -2.925], [-3.0, -3.05], [-3.05, -3.0]])


def test_background_entropy_skips_nan_images_and_falls_back_without_background():
    e = np.concatenate([_entropy(), np.full((3, 2, G, G), -1.0)], axis=1)
    fg = np.concatenate([_foreground(), np.zeros((2, G, G), bool)])
    e[1, 2] = np.nan  # image 2: no signal at checkpoint 1
    fg[3] = True  # image 3: no background cell at all
    h = background_entropy(e, fg, "pooled")
    # ck0: images 0, 1, 2 count (-3.025, -2.925, -1.0); image 3 has no background
    np.testing.assert_allclose(h[0, 0], (-3.025 - 2.925 - 1.0) / 3)
    np.testing.assert_allclose(h[1, 0], -3.025)  # image 2 skipped at ck1
    hp = background_entropy(e, fg, "per_image")
    np.testing.assert_allclose(hp[:, 3], h[:, 0])  # no background -> pooled value


def test_concept_cells_counts_and_strict_threshold():
    e, fg = _entropy(), _foreground()
    c = concept_cells(e, background_entropy(e, fg), 0.2)
    n_fg, n_bg = count_concepts(c, fg)
    np.testing.assert_array_equal(n_fg, [[1, 1], [2, 3], [2, 4]])
    np.testing.assert_array_equal(n_bg, [[1, 0], [0, 1], [1, 0]])
    assert c[0, 0, 0, 0] and c[0, 0, 3, 3] and not c[0, 1, 2, 2]
    # strict: H_bar - H_i == b exactly (binary-exact numbers) is not a concept
    e2 = np.full((1, 1, G, G), -3.0)
    e2[0, 0, 0, 0] = -3.25
    e2[0, 0, 0, 1] = -3.26
    fg2 = np.zeros((1, G, G), bool)
    fg2[0, 0, :2] = True
    c2 = concept_cells(e2, background_entropy(e2, fg2), 0.25)
    assert not c2[0, 0, 0, 0] and c2[0, 0, 0, 1]


def test_concept_cells_nan_is_never_a_concept():
    e = _entropy()
    e[1, 1] = np.nan
    c = concept_cells(e, background_entropy(e, _foreground()))
    assert not c[1, 1].any()


def test_foreground_ratio_zero_when_no_concept():
    np.testing.assert_allclose(foreground_ratio([2, 4, 0], [1, 0, 0]), [2 / 3, 1.0, 0.0])


def test_peak_first_of_ties_and_distance_spread():
    n_fg = np.array([[1, 1], [2, 3], [2, 4]])
    np.testing.assert_array_equal(peak_checkpoint(n_fg), [1, 2])  # img0: tie 1/2 -> 1
    d = peak_distance(n_fg, DIST)
    np.testing.assert_allclose(d, [0.5, 1.25])
    s = distance_spread(d)
    assert s["D_mean"] == pytest.approx(0.875)
    assert s["D_var"] == pytest.approx(0.140625)  # ((0.375)^2 * 2) / 2, ddof 0
    assert s["D_std"] == pytest.approx(0.375)


def test_peak_of_image_without_concepts():
    n_fg = np.array([[0, 1], [0, 3], [0, 3]])
    np.testing.assert_allclose(peak_distance(n_fg, DIST), [0.0, 0.5])  # first checkpoint
    d = peak_distance(n_fg, DIST, without_concepts="exclude")
    assert np.isnan(d[0]) and d[1] == 0.5
    assert distance_spread(d) == {"D_mean": 0.5, "D_std": 0.0, "D_var": 0.0}
    assert np.isnan(distance_spread(np.array([np.nan]))["D_mean"])


def test_stability_hand_computed_and_empty_sets():
    e, fg = _entropy(), _foreground()
    c = concept_cells(e, background_entropy(e, fg))
    # img0: S_2 = {(0,0),(1,1)}, union {(0,0),(0,1),(1,1)} -> 2/3; img1: 4/4
    np.testing.assert_allclose(stability(c, fg), [2 / 3, 1.0])
    none = np.zeros_like(c)
    none[:, 0] = c[:, 0]  # image 1 never has a concept: 0/0
    np.testing.assert_allclose(stability(none, fg), [2 / 3, 0.0])
    r = stability(none, fg, empty="exclude")
    assert r[0] == pytest.approx(2 / 3) and np.isnan(r[1])
    # background concepts do not enter rho
    bg_only = np.zeros_like(c)
    bg_only[:, 0, 3, 3] = True
    np.testing.assert_allclose(stability(bg_only, fg), [0.0, 0.0])


def test_model_concepts_all_numbers():
    mc = model_concepts(_entropy(), _foreground(), EPOCHS, DIST)
    assert mc.count_index == 2 and mc.count_epoch == 10
    m = mc.image_metrics()
    np.testing.assert_allclose(m["N_fg"], [2, 4])
    np.testing.assert_allclose(m["N_bg"], [1, 0])
    np.testing.assert_allclose(m["fg_ratio"], [2 / 3, 1.0])
    np.testing.assert_allclose(m["peak_distance"], [0.5, 1.25])
    np.testing.assert_allclose(m["rho"], [2 / 3, 1.0])
    mc1 = model_concepts(_entropy(), _foreground(), EPOCHS, DIST, count_epoch=5)
    np.testing.assert_allclose(mc1.image_metrics()["N_fg"], [2, 3])
    np.testing.assert_allclose(mc1.fg_ratio, [1.0, 0.75])
    with pytest.raises(ValueError, match="not an analysed checkpoint"):
        model_concepts(_entropy(), _foreground(), EPOCHS, DIST, count_epoch=7)


def test_usable_images():
    e = _entropy()
    e[1, 1] = np.nan
    ok, first = usable_images(e)
    np.testing.assert_array_equal(ok, [True, False])
    np.testing.assert_array_equal(first, [-1, 1])


def test_effective_images_original_rule():
    # 5 images, 3 checkpoints at epochs 0, 5, 10, late from epoch 4 (40/150 of 15)
    fg = np.zeros((5, G, G), bool)
    fg[:, :2, :2] = True
    fg[4] = True  # no background cell: undefined -> rejected
    e = np.full((3, 5, G, G), -3.0)
    e[:, 0][:, :2, :2] = -3.5  # fg lower than bg everywhere: effective
    e[0, 1][:2, :2] = -2.0  # bg < fg only at the early checkpoint: still effective
    e[:, 2][:, :2, :2] = -3.5
    e[2, 2][:2, :2] = -2.5  # bg < fg at epoch 10: rejected there
    # image 3: fg == bg everywhere: equal passes
    eff, first = effective_images(e, fg, EPOCHS, late_epoch=15 * 40 / 150)
    np.testing.assert_array_equal(eff, [True, True, False, True, False])
    np.testing.assert_array_equal(first, [-1, -1, 2, -1, 1])
    # with every checkpoint late, image 1 is rejected at epoch 0
    eff0, first0 = effective_images(e, fg, EPOCHS, late_epoch=0)
    assert not eff0[1] and first0[1] == 0

