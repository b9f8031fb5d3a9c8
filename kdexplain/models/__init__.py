"""Architectures and layer naming."""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".layers": [
        "LAYER_ALIASES", "LayerNotFoundError", "get_layer", "layer_names", "resolve_layer_name",
    ],
    ".zoo": [
        "ARCHS", "TORCHVISION_ARCHS", "KDNet", "build_model", "load_model", "load_state_dict",
        "model_for_state",
    ],
})
