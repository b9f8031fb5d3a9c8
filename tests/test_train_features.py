"""kdexplain.train.features: parameters upstream of a layer, truncated models, shapes."""

from __future__ import annotations

import pytest
import torch

from kdexplain.models import LayerNotFoundError, build_model
from kdexplain.models.features import LayerFeature
from kdexplain.train import (
    TruncatedModel,
    check_feature_shapes,
    upstream_parameters,
)


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
