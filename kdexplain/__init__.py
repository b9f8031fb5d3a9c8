"""kdexplain: explain knowledge distillation by quantifying the knowledge inside networks.

Rooms, in the direction data flows: ``data`` -> ``models`` -> ``train`` -> ``quantify``
-> ``concepts`` -> ``report``. The public names are re-exported here, and imported on first
use (PEP 562), so that ``kdexplain --help`` and the config load without torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the room that defines it.
_EXPORTS = {
    "ConceptSettings": "kdexplain.concepts",
    "RunEntropies": "kdexplain.concepts",
    "analyze_concepts": "kdexplain.concepts",
    "build_dataset": "kdexplain.data",
    "denormalize": "kdexplain.data",
    "mask_to_grid": "kdexplain.data",
    "build_model": "kdexplain.models",
    "get_layer": "kdexplain.models",
    "resolve_layer_name": "kdexplain.models",
    "PerturbationEntropy": "kdexplain.quantify",
    "QuantifyResult": "kdexplain.quantify",
    "QuantifySettings": "kdexplain.quantify",
    "quantify": "kdexplain.quantify",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from kdexplain.concepts import ConceptSettings, RunEntropies, analyze_concepts  # noqa: F401
    from kdexplain.data import build_dataset, denormalize, mask_to_grid  # noqa: F401
    from kdexplain.models import build_model, get_layer, resolve_layer_name  # noqa: F401
    from kdexplain.quantify import (  # noqa: F401
        PerturbationEntropy,
        QuantifyResult,
        QuantifySettings,
        quantify,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kdexplain' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    # a callable subpackage of the same name (quantify) is the function and the package
    same = module.__name__ == f"{__name__}.{name}" and callable(module)
    value = module if same else getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


class _Package(types.ModuleType):
    """Keeps a public function whose name is also a subpackage (``quantify``) as the function.

    Importing ``kdexplain.quantify`` sets the package attribute to the subpackage; the eager
    re-export this replaces always put the function back, so this does the same, unless the
    subpackage is itself callable as the function (``kdexplain.quantify`` is), so that
    ``import kdexplain.quantify.plot`` works too.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType) and not callable(value):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
