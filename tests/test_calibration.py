"""The concept threshold calibrated against the reference estimator (docs/method.md section 4): golden values."""

from __future__ import annotations

import numpy as np
import pytest

from kdexplain.concepts import ThresholdCalibration, calibrate_threshold, concept_margins
from kdexplain.concepts.calibration import matched_threshold

FG = np.array([[[True, False], [False, False]]])  # (N=1, 2, 2): one object cell


def test_golden_values_by_hand():
    # reference: H_bar = mean(2, 2, 2) = 2, margins [[1, 0], [0, 0]] -> 1 concept at b = 0.2
    ref = np.array([[[[1.0, 2.0], [2.0, 2.0]]]])
    # other: H_bar = mean(3, 2.5, 3.5) = 3, margins [[3, 0], [0.5, -0.5]] -> 2 concepts
    other = np.array([[[[0.0, 3.0], [2.5, 3.5]]]])
    np.testing.assert_allclose(concept_margins(other, FG)[0, 0], [[3.0, 0.0], [0.5, -0.5]])
    cal = calibrate_threshold([ref], [other], [FG], threshold=0.2)
    assert (cal.reference_concepts, cal.concepts_uncalibrated, cal.concepts_calibrated) == (1, 2, 1)
    assert cal.calibrated_threshold == pytest.approx((3.0 + 0.5) / 2)  # between 1st and 2nd
    assert cal.agreement_uncalibrated == pytest.approx(0.5)  # {(0,0)} vs {(0,0), (1,0)}
    assert cal.agreement_calibrated == 1.0
    assert cal.range_ratio == pytest.approx(3.5 / 1.0)
    assert cal.scale == pytest.approx(1.75 / 0.2)
    assert (cal.grids, cal.cells) == (1, 4)
    assert ThresholdCalibration.from_dict(cal.to_dict()) == cal


def test_a_wider_estimator_with_the_same_ranking_calibrates_to_full_agreement():
    rng = np.random.default_rng(1)
    ref = [rng.normal(3.0, 0.15, (3, 5, 6, 6)), rng.normal(2.0, 0.1, (3, 5, 6, 6))]
    fg = [rng.random((5, 6, 6)) < 0.3 for _ in ref]
    other = [3.0 * r + 7.0 for r in ref]  # 3x the range, shifted: margins scale by 3
    cal = calibrate_threshold(ref, other, fg)
    assert cal.agreement_calibrated == 1.0 and cal.concepts_calibrated == cal.reference_concepts
    assert cal.agreement_uncalibrated < 1.0
    assert cal.range_ratio == pytest.approx(3.0)
    assert 0.55 < cal.calibrated_threshold < 0.65  # about 3 x 0.2, between two margins


def test_an_image_without_signal_under_one_estimator_is_left_out_of_both():
    fg = np.repeat(FG, 2, axis=0)  # two images
    ref = np.array([[[[1.0, 2.0], [2.0, 2.0]], [[1.0, 2.0], [2.0, 2.0]]]])
    other = ref.copy()
    other[0, 1] = np.nan  # the second image had no signal (d0 == 0) under the other preset
    cal = calibrate_threshold([ref], [other], [fg])
    assert cal.cells == 4 and cal.reference_concepts == 1  # the first image's cells only


def test_matched_threshold_edges():
    m = np.array([0.3, -0.1, 0.9])
    assert matched_threshold(m, 0) > 0.9
    assert matched_threshold(m, 3) < -0.1
    assert matched_threshold(m, 1) == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"n_concepts must lie in \[0, 3\]"):
        matched_threshold(m, 4)
    with pytest.raises(ValueError, match="no finite margins"):
        matched_threshold(np.array([]), 0)


def test_mismatched_grids_are_refused_with_a_clear_message():
    ref = np.zeros((1, 1, 2, 2))
    with pytest.raises(ValueError, match="differ; give the same checkpoints and images"):
        calibrate_threshold([ref], [np.zeros((2, 1, 2, 2))], [FG])
    with pytest.raises(ValueError, match="one reference array, one other array"):
        calibrate_threshold([ref], [], [FG])


def test_the_module_example_runs():
    import doctest

    from kdexplain.concepts import calibration

    assert doctest.testmod(calibration).failed == 0


def test_the_units_calibrated_are_the_count_checkpoint_or_all():
    from kdexplain.pipeline.calibrate import _wanted_units

    manifest = {"units": [{"role": r, "epoch": e} for r in ("student", "baseline")
                          for e in (0, 5, 10)] + [{"role": "teacher", "epoch": 7}]}
    roles = ["teacher", "student", "baseline"]
    assert _wanted_units(manifest, roles, "last") == [
        ("teacher", 7), ("student", 10), ("baseline", 10)]
    # hypothesis 1 counts at analysis.count_epoch: the calibration follows it where a model
    # has that checkpoint (the teacher, without it, keeps its last)
    assert _wanted_units(manifest, roles, "last", count_epoch=5) == [
        ("teacher", 7), ("student", 5), ("baseline", 5)]
    assert _wanted_units(manifest, ["student"], "all") == [
        ("student", 0), ("student", 5), ("student", 10)]
    with pytest.raises(ValueError, match="'last' or 'all'"):
        _wanted_units(manifest, roles, "first")
