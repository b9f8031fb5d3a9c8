"""Units of the train room: weight path length, layer features, freezing, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdexplain.models import LayerNotFoundError, build_model
from kdexplain.models.features import LayerFeature
from kdexplain.train import (
    LrFactor,
    TruncatedModel,
    WeightTrajectory,
    check_feature_shapes,
    path_length,
    scaled_lr,
    upstream_parameters,
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


def test_upstream_parameters_kdnet():
    model = build_model("kdnet", 3, width=4, hidden=8)
    up = upstream_parameters(model, "fc2", 32)
    convs = [f"features.{i}.{k}" for i in (0, 3, 6, 9) for k in ("weight", "bias")]
    assert up == convs + ["classifier.0.weight", "classifier.0.bias",
                          "classifier.3.weight", "classifier.3.bias"]
    assert upstream_parameters(model, "conv", 32) == convs
    assert len(upstream_parameters(model, "fc3", 32)) == len(list(model.parameters()))


def test_upstream_parameters_follow_the_graph_in_resnets():
    model = build_model("resnet18", 3)
    up = set(upstream_parameters(model, "layer2.0.bn2", 32))
    # the block's downsample branch is added after bn2: bn2's output does not depend on it
    assert "layer2.0.downsample.0.weight" not in up
    assert "layer2.0.conv1.weight" in up and "layer1.1.conv2.weight" in up
    assert "layer2.1.conv1.weight" not in up
    # the next block's input is the sum, which includes the downsample branch
    up_next = set(upstream_parameters(model, "layer2.1.conv1", 32))
    assert "layer2.0.downsample.0.weight" in up_next
    assert "fc.weight" not in set(upstream_parameters(model, "conv", 32))


def test_truncated_model_stops_at_the_layer_and_matches_layer_feature():
    torch.manual_seed(0)
    model = build_model("kdnet", 3, width=4, hidden=8).eval()
    x = torch.randn(2, 3, 32, 32)
    trunc = TruncatedModel(model, "fc1")
    f = trunc(x)
    trunc.remove()
    with LayerFeature(model, "fc1") as phi:
        g = phi(x)
    assert f.shape == (2, 8)
    assert torch.equal(f, g)
    assert (f < 0).any()  # pre-activation: the ReLU after fc1 has not been applied
    assert not model.classifier[0]._forward_hooks  # hooks removed


def test_layer_feature_is_the_output_before_an_inplace_relu():
    # torchvision's ResNet (like VGG and AlexNet) applies ReLU(inplace=True) right after bn1;
    # the forward pass stops at bn1, so the ReLU never overwrites the feature
    model = build_model("resnet18", 3).eval()
    assert model.relu.inplace
    x = torch.randn(1, 3, 32, 32)
    with LayerFeature(model, "bn1") as phi, torch.no_grad():
        f = phi(x)
    with torch.no_grad():
        direct = model.bn1(model.conv1(x))
    assert torch.equal(f, direct)
    assert (f < 0).any()
    assert not model.bn1._forward_hooks


def test_feature_shape_mismatch_names_both_shapes():
    teacher = build_model("kdnet", 3, width=4, hidden=8)
    student = build_model("kdnet", 3, width=4, hidden=16)
    with pytest.raises(ValueError, match=r"\(8,\) in the teacher but \(16,\) in the student"):
        check_feature_shapes(teacher, student, "fc1", 32)
    assert check_feature_shapes(teacher, teacher, "conv", 32) == (16, 4, 4)  # before the 4th pool


def test_unknown_layer_lists_valid_names():
    model = build_model("kdnet", 3, width=4, hidden=8)
    with pytest.raises(LayerNotFoundError, match="classifier.0") as e:
        upstream_parameters(model, "fc9", 32)
    assert "Aliases: conv=features.9" in str(e.value)


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
