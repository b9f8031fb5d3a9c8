"""Architectures and layer naming."""

from kdexplain.models.layers import (
    LAYER_ALIASES,
    LayerNotFoundError,
    get_layer,
    layer_names,
    resolve_layer_name,
)
from kdexplain.models.zoo import (
    ARCHS,
    TORCHVISION_ARCHS,
    KDNet,
    build_model,
    load_model,
    load_state_dict,
    model_for_state,
)

__all__ = [
    "ARCHS",
    "LAYER_ALIASES",
    "TORCHVISION_ARCHS",
    "KDNet",
    "LayerNotFoundError",
    "build_model",
    "get_layer",
    "layer_names",
    "load_model",
    "load_state_dict",
    "model_for_state",
    "resolve_layer_name",
]
