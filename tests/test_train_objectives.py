"""kdexplain.train.objectives: the objectives of a training phase, with golden values."""

from __future__ import annotations

import math

import pytest
import torch


def test_objectives_are_small_classes_with_golden_values():
    from kdexplain.train.objectives import OBJECTIVES, make_objective

    assert OBJECTIVES == ("ce", "feature", "soft", "logit_l2")
    x = torch.zeros(2, 3)
    y = torch.tensor([0, 2])
    student = torch.nn.Identity()
    teacher = lambda t: t + torch.tensor([1.0, 0.0, -1.0])  # noqa: E731
    ce = make_objective("ce")
    loss, z = ce(student, None, x, y)
    assert not ce.needs_teacher and ce.has_accuracy and z is x
    assert float(loss) == pytest.approx(math.log(3))  # uniform logits over 3 classes
    feat = make_objective("feature")
    loss, z = feat(student, teacher, x, y)
    assert feat.needs_teacher and feat.feature_level and z is None
    assert float(loss) == pytest.approx(2 / 3)  # mean of (0-1)^2, 0, (0+1)^2
    l2 = make_objective("logit_l2")
    loss, _ = l2(student, teacher, x, y)
    assert float(loss) == pytest.approx(2 / (2 * 3))  # sum_i (z_i - v_i)^2 / (2N), per example
    soft = make_objective("soft", temperature=2.0, soft_weight=1.0)
    assert soft.temperature == 2.0 and soft.needs_teacher
    with pytest.raises(ValueError, match="soft objective needs temperature and soft_weight"):
        make_objective("soft")
    with pytest.raises(ValueError, match="unknown objective 'mse'"):
        make_objective("mse")
