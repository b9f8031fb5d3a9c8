"""Knowledge quantification: the perturbation engine (docs/method.md section 3).

The package is callable: ``kdexplain.quantify(models, images, layer, ...)`` is
:func:`kdexplain.quantify.engine.quantify`, and its submodules stay importable
(``import kdexplain.quantify.plot``). Importing it never imports ``kdexplain.train``.
"""

import inspect as _inspect
import sys as _sys
import types as _types

from kdexplain.models.features import LayerFeature, frozen
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


class _CallableModule(_types.ModuleType):
    """This package, callable as :func:`quantify` (so the top-level name can be both)."""

    def __call__(self, *args, **kwargs):
        return quantify(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
__signature__ = _inspect.signature(quantify)
