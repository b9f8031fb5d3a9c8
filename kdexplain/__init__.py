"""kdexplain: explain knowledge distillation by quantifying the knowledge inside networks.

Rooms, in the direction data flows: ``data`` -> ``models`` -> ``train`` -> ``quantify``
-> ``concepts`` -> ``report``. The public names are re-exported here.
"""

__version__ = "0.1.0"

# `quantify` is the subpackage, callable as the function (see kdexplain/quantify/__init__.py),
# so that `kdexplain.quantify(...)` and `import kdexplain.quantify.plot` both work.
import kdexplain.quantify as quantify  # noqa: E402
from kdexplain.concepts import ConceptSettings, RunEntropies, analyze_concepts  # noqa: E402
from kdexplain.data import build_dataset, denormalize, mask_to_grid  # noqa: E402
from kdexplain.models import build_model, get_layer, resolve_layer_name  # noqa: E402
from kdexplain.quantify import (  # noqa: E402
    PerturbationEntropy,
    QuantifyResult,
    QuantifySettings,
)

__all__ = [
    "ConceptSettings",
    "PerturbationEntropy",
    "RunEntropies",
    "QuantifyResult",
    "QuantifySettings",
    "__version__",
    "analyze_concepts",
    "build_dataset",
    "build_model",
    "denormalize",
    "get_layer",
    "mask_to_grid",
    "quantify",
    "resolve_layer_name",
]
