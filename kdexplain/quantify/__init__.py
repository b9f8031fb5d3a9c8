"""Knowledge quantification: the perturbation engine (SPEC section 3)."""

from kdexplain.quantify.engine import (
    ENTROPY_OFFSET,
    PRESETS,
    QuantifyResult,
    QuantifySettings,
    default_entropy_weight,
    image_key,
    quantify,
    resolve_settings,
    sigma_to_entropy,
    upsample_grid,
)
from kdexplain.quantify.features import LayerFeature, frozen

__all__ = [
    "ENTROPY_OFFSET",
    "PRESETS",
    "LayerFeature",
    "QuantifyResult",
    "QuantifySettings",
    "default_entropy_weight",
    "frozen",
    "image_key",
    "quantify",
    "resolve_settings",
    "sigma_to_entropy",
    "upsample_grid",
]

from kdexplain.quantify.captum_attr import PerturbationEntropy  # noqa: E402

__all__ += ["PerturbationEntropy"]
