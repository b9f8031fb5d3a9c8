"""kdexplain: explain knowledge distillation by quantifying the knowledge inside networks.

Rooms, in the direction data flows: ``data`` -> ``models`` -> ``train`` -> ``quantification``
-> ``concepts`` -> ``report``. The public names are re-exported here, and imported on first
use (PEP 562), so that ``kdexplain --help`` and the config load without torch. The function
:func:`quantify` and the package that holds its parts (:mod:`kdexplain.quantification`) have
different names, as Captum's ``captum.attr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdexplain.lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, _exported = lazy_exports(__name__, {
    "kdexplain.concepts": ["ConceptSettings", "RunEntropies", "analyze_concepts"],
    "kdexplain.data": ["build_dataset", "denormalize", "mask_to_grid"],
    "kdexplain.models": ["build_model", "get_layer", "resolve_layer_name"],
    "kdexplain.quantification": [
        "PerturbationEntropy", "QuantifyResult", "QuantifySettings", "quantify",
    ],
})
__all__ = ["__version__", *_exported]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from kdexplain.concepts import ConceptSettings, RunEntropies, analyze_concepts  # noqa: F401
    from kdexplain.data import build_dataset, denormalize, mask_to_grid  # noqa: F401
    from kdexplain.models import build_model, get_layer, resolve_layer_name  # noqa: F401
    from kdexplain.quantification import (  # noqa: F401
        PerturbationEntropy,
        QuantifyResult,
        QuantifySettings,
        quantify,
    )
