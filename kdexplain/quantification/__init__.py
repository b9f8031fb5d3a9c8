"""Knowledge quantification: the perturbation engine (docs/method.md section 3).

The function is :func:`kdexplain.quantify` (defined in :mod:`kdexplain.quantification.engine`);
this package holds its parts and is named apart from it, as ``captum.attr`` holds Captum's
attributions. Importing it never imports ``kdexplain.train``.
"""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "kdexplain.models.features": ["LayerFeature", "frozen"],
    ".captum_attr": ["PerturbationEntropy"],
    ".engine": ["quantify"],
    ".result": [
        "ENTROPY_OFFSET", "QuantifyResult", "image_key", "sigma_to_entropy", "upsample_grid",
    ],
    ".settings": ["PRESETS", "QuantifySettings", "default_entropy_weight", "resolve_settings"],
})
