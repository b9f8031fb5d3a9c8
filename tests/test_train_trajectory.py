"""kdexplain.train.trajectory: the weight path length by hand, resume, refusals."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdexplain.models import build_model
from kdexplain.train import (
    WeightTrajectory,
    path_length,
)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2, bias=False)


def test_path_length_three_sgd_steps_by_hand():
    # W0 = [[3, 0], [0, 4]], ||W0|| = 5. Plain SGD, lr 1, gradients chosen by hand:
    # g1 = [[1, 0], [0, 0]] -> step norm 1; g2 = [[0, 0], [0, 2]] -> 2; g3 = [[-1, 0], [0, 0]]
    # -> 1 (a detour back). d(t) = 1/5, 3/5, 4/5. Per-epoch form with epochs {1, 2}, {3}:
    # ||W2 - W0|| = sqrt(1 + 4), ||W3 - W2|| = 1 -> (sqrt(5) + 1) / 5; a single epoch:
    # ||W3 - W0|| = 2 -> 2/5 (the path is longer than the displacement).
    toy = _Toy()
    with torch.no_grad():
        toy.fc.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    opt = torch.optim.SGD(toy.parameters(), lr=1.0)
    traj = WeightTrajectory(toy, ["fc"])
    traj.start()
    assert traj.distance_row(0, 0) == {"epoch": 0, "global_step": 0, "d_step": 0.0, "d_epoch": 0.0}
    grads = [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 2.0]], [[-1.0, 0.0], [0.0, 0.0]]]
    weights = [toy.fc.weight.detach().clone()]
    rows = []
    for i, g in enumerate(grads):
        toy.fc.weight.grad = torch.tensor(g)
        opt.step()
        traj.step()
        weights.append(toy.fc.weight.detach().clone())
        if i == 1:
            rows += traj.end_epoch(epoch=1, first_step=1)
    rows += traj.end_epoch(epoch=2, first_step=3)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["epoch"] for r in rows] == [1, 1, 2]
    assert [r["weight_step_norm"] for r in rows] == pytest.approx([1.0, 2.0, 1.0])
    assert [r["path_length"] for r in rows] == pytest.approx([0.2, 0.6, 0.8])
    assert path_length(weights) == pytest.approx([0.0, 0.2, 0.6, 0.8])
    row = traj.distance_row(2, 3)
    assert row["d_step"] == pytest.approx(0.8)
    assert row["d_epoch"] == pytest.approx((math.sqrt(5) + 1) / 5)
    # one epoch holding all three steps: the per-epoch form is the displacement
    assert path_length([weights[0], weights[3]]) == pytest.approx([0.0, 0.4])


def test_trajectory_resume_continues_exactly():
    toy = _Toy()
    with torch.no_grad():
        toy.fc.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    traj = WeightTrajectory(toy, ["fc"])
    traj.start()
    with torch.no_grad():
        toy.fc.weight.add_(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    traj.step()
    traj.end_epoch(1, 1)
    state = traj.state_dict()
    again = WeightTrajectory(toy, ["fc"])
    again.load_state_dict(state)
    with torch.no_grad():
        toy.fc.weight.add_(torch.tensor([[0.0, 0.0], [3.0, 0.0]]))
    again.step()
    rows = again.end_epoch(2, 2)
    assert rows[0]["path_length"] == pytest.approx(4 / 5)
    assert again.distance_row(2, 2)["d_epoch"] == pytest.approx(4 / 5)


def test_trajectory_rejects_layer_without_weight():
    model = build_model("kdnet", 3, width=4, hidden=8)
    with pytest.raises(ValueError, match="no weight to track.*features.0"):
        WeightTrajectory(model, ["features.1"])  # a ReLU
