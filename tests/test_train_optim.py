"""kdexplain.train.optim: learning-rate schedules and the DDP scaling."""

from __future__ import annotations

import math

import pytest

from kdexplain.train import (
    LrFactor,
    scaled_lr,
)


def test_lr_schedules_and_scaling():
    f = LrFactor("loglinear", 11)
    assert [f(i) for i in (0, 5, 10)] == pytest.approx([1.0, 10 ** -0.5, 0.1])
    assert LrFactor("loglinear", 1)(0) == 1.0
    c = LrFactor("cosine", 4)
    assert [c(i) for i in range(4)] == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5,
                                                      (1 + math.cos(3 * math.pi / 4)) / 2])
    assert LrFactor("constant", 9)(7) == 1.0
    assert scaled_lr(0.1, 4, "linear") == pytest.approx(0.4)
    assert scaled_lr(0.1, 4, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.1, 4, "none") == pytest.approx(0.1)
