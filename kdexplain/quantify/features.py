"""Reading a layer's feature, stopping the forward pass there.

The feature of a layer is its module's output (before any activation that follows).
:class:`kdexplain.train.TruncatedModel` captures it with a forward hook and stops the
forward pass there, so the rest of the network is never computed; :class:`LayerFeature`
is that mechanism as a context manager that always removes its hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from kdexplain.models.layers import resolve_layer_name
from kdexplain.train.features import TruncatedModel


class LayerFeature:
    """Callable ``x -> feature of layer`` that stops the forward pass at the layer.

    Use as a context manager so the hook is always removed::

        with LayerFeature(model, "classifier.0") as phi:
            f = phi(x)            # (N, *feature_shape)

    Parameters
    ----------
    model : nn.Module
    layer : str
        Module path or the paper's alias (``conv``, ``fc1``, ...).
    arch : str, optional
        Architecture name for alias resolution (default: ``model.kdexplain_arch``).
    """

    def __init__(self, model: nn.Module, layer: str, arch: str | None = None) -> None:
        self.model = model
        self.layer = resolve_layer_name(model, layer, arch)
        self._truncated: TruncatedModel | None = None

    def __enter__(self) -> LayerFeature:
        self._truncated = TruncatedModel(self.model, self.layer)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._truncated is not None:
            self._truncated.remove()
            self._truncated = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._truncated is None:
            raise RuntimeError("use LayerFeature as a context manager: `with LayerFeature(...) as phi:`")
        return self._truncated(x)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode and no weight gradients for the duration; both restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


FEATURE_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "identity": lambda t: t,
}
