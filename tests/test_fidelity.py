"""Fidelity to the teacher (kdexplain.train.fidelity): golden values computed by hand."""

import math

import pytest
import torch

from kdexplain.train.fidelity import (
    ECE_BINS,
    agreement,
    expected_calibration_error,
    fidelity,
    mean_kl,
)


def _logits(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_agreement_counts_equal_top1():
    t = torch.tensor([[3.0, 1, 0], [0, 2, 1], [0, 0, 5], [4, 1, 1]])
    m = torch.tensor([[2.0, 0, 0], [0, 1, 3], [1, 0, 2], [0, 1, 0]])
    # top-1: teacher 0 1 2 0, model 0 2 2 1 -> 2 of 4
    assert agreement(t, m) == 0.5
    assert agreement(t, t) == 1.0


def test_mean_kl_by_hand():
    t = _logits([[0.5, 0.5], [0.2, 0.8]])
    m = _logits([[0.25, 0.75], [0.2, 0.8]])
    # row 1: 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3); row 2: identical -> 0
    assert mean_kl(t, m) == pytest.approx(0.5 * math.log(4 / 3) / 2, abs=1e-12)
    assert mean_kl(t, t) == pytest.approx(0.0, abs=1e-12)
    # KL is not symmetric: KL(m || t) differs
    assert mean_kl(m, t) != pytest.approx(mean_kl(t, m))


def test_ece_by_hand_15_bins():
    assert ECE_BINS == 15
    # confidences 0.9 (right), 0.9 (wrong) in bin (13/15, 14/15]; 0.62 (right), 0.64 (wrong)
    # in bin (9/15, 10/15]: 2/4 * |0.5 - 0.9| + 2/4 * |0.5 - 0.63| = 0.2 + 0.065
    logits = _logits([[0.9, 0.1], [0.9, 0.1], [0.38, 0.62], [0.64, 0.36]])
    labels = torch.tensor([0, 1, 1, 1])
    assert expected_calibration_error(logits, labels) == pytest.approx(0.265, abs=1e-12)
    # one bin only (both in the top bin): |1/2 - 0.97|
    two = _logits([[0.97, 0.03], [0.03, 0.97]])
    assert expected_calibration_error(two, torch.tensor([0, 0])) == pytest.approx(0.47)


def test_fidelity_of_the_teacher_itself():
    t = _logits([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    out = fidelity(t, t, torch.tensor([0, 2]))
    assert out["agreement"] == 1.0
    assert out["kl_teacher"] == pytest.approx(0.0, abs=1e-12)
    # bins: 0.7 -> (10/15, 11/15], 0.6 -> (8/15, 9/15]; both right: (0.3 + 0.4) / 2
    assert out["ece"] == pytest.approx(0.35)


def test_fidelity_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        fidelity(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, dtype=torch.long))
