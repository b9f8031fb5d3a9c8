"""The feature the engine compares: the layer's output, then a transform (docs/method.md section 3).

:class:`~kdexplain.models.features.LayerFeature` (stop the forward pass at the layer) and
:func:`~kdexplain.models.features.frozen` live in :mod:`kdexplain.models.features`, shared
with ``train``; they are re-exported here for the engine's users.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdexplain.models.features import LayerFeature, TruncatedModel, frozen

__all__ = ["FEATURE_TRANSFORMS", "LayerFeature", "TruncatedModel", "frozen"]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


#: Applied to the layer's output before comparing (the original uses ReLU).
FEATURE_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "identity": _identity,
}
