"""kdexplain.models: the model zoo (KDNet, torchvision heads, loading weights) and layer names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdexplain.config import ExperimentConfig
from kdexplain.models import (
    ARCHS,
    LAYER_ALIASES,
    KDNet,
    LayerNotFoundError,
    build_model,
    get_layer,
    layer_names,
    load_model,
    load_state_dict,
    resolve_layer_name,
)
from kdexplain.models.zoo import check_arch


def test_every_arch_a_config_accepts_has_the_paper_aliases_and_exists_in_torchvision():
    import torchvision

    allowed = ExperimentConfig.model_fields["model"].annotation.model_fields["arch"].annotation
    assert set(allowed.__args__) == set(LAYER_ALIASES) == set(ARCHS)
    tv = set(torchvision.models.list_models(module=torchvision.models))
    assert set(ARCHS) - {"kdnet"} <= tv


def test_kdnet_shapes_and_the_paper_aliases():
    model = build_model("kdnet", 7, width=4, hidden=16)
    assert isinstance(model, KDNet) and model.kdexplain_arch == "kdnet"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert isinstance(get_layer(model, "conv"), nn.Conv2d)
    assert get_layer(model, "conv").out_channels == 16  # the fourth stage: 4 x width
    assert get_layer(model, "fc1").out_features == 16
    assert get_layer(model, "fc3").out_features == 7
    assert resolve_layer_name(model, "classifier.3") == "classifier.3"


def test_torchvision_head_is_resized():
    model = build_model("resnet18", 3).eval()
    assert model.fc.out_features == 3 and resolve_layer_name(model, "fc3", "resnet18") == "fc"
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_a_wrong_layer_names_the_closest_and_the_aliases():
    model = build_model("kdnet", 4, width=4, hidden=8)
    with pytest.raises(LayerNotFoundError, match=r"Closest valid names: classifier\.0") as err:
        resolve_layer_name(model, "clasifier.0")
    assert "fc1=classifier.0" in str(err.value) and not str(err.value).startswith("'")
    assert layer_names(model)[:2] == ["features", "features.0"]
    with pytest.raises(LayerNotFoundError, match="not a module of this"):
        resolve_layer_name(model, nn.Linear(2, 2))


def test_unknown_arch_names_the_closest():
    assert check_arch("mobilenet_v3_small") == "mobilenet_v3_small"
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'.*closest: resnet1"):
        check_arch("resnet19")


def test_load_model_from_a_plain_state_dict_infers_classes_and_widths(tmp_path):
    torch.manual_seed(0)
    model = build_model("kdnet", 5, width=4, hidden=8).eval()
    path = tmp_path / "w.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)  # from DDP
    assert set(load_state_dict(path)) == set(model.state_dict())
    again = load_model(path, arch="kdnet")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    assert not again.training
    with pytest.raises(ValueError, match="plain state dict: say which architecture"):
        load_model(path)
    torch.save({"not": "tensors"}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="holds no state dict"):
        load_state_dict(tmp_path / "bad.pth")
