"""Reading a layer's feature, stopping the forward pass there.

The feature of a layer is its module's output (before any activation that follows). A
forward hook captures it and raises :class:`_StopForward`, so the rest of the network is
never computed: this works for any architecture whose forward runs the layer's module once,
torchvision's included, without rewriting the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from kdexplain.models.layers import resolve_layer_name


class _StopForward(Exception):
    """Raised by the hook once the layer's output is captured."""


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
    stop : bool
        Stop the forward pass at the layer (default). Turn off for modules whose output
        is needed by code that runs after an exception-free forward (rare).
    """

    def __init__(self, model: nn.Module, layer: str, arch: str | None = None,
                 stop: bool = True) -> None:
        self.model = model
        self.layer = resolve_layer_name(model, layer, arch)
        self.module = model.get_submodule(self.layer)
        self.stop = stop
        self._captured: torch.Tensor | None = None
        self._handle = None

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        self._captured = output
        if self.stop:
            raise _StopForward

    def __enter__(self) -> LayerFeature:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._captured = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._handle is None:
            raise RuntimeError("use LayerFeature as a context manager: `with LayerFeature(...) as phi:`")
        self._captured = None
        try:
            self.model(x)
        except _StopForward:
            pass
        out, self._captured = self._captured, None
        if out is None:
            raise RuntimeError(
                f"layer {self.layer!r} was not reached by the forward pass of "
                f"{type(self.model).__name__}; choose a module that the forward calls")
        return out


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
