"""Reading a layer's feature, stopping the forward pass there.

The feature of layer L is its module's output (before the activation that follows), taken
with a forward hook, so torchvision models are used as they are. :class:`TruncatedModel`
stops the forward pass right after L (the layers above are never computed);
:class:`LayerFeature` is the same mechanism as a context manager that always removes its
hook. :func:`parameter_state` is the one place that sets, and restores, the training mode
and the ``requires_grad`` flags of a model's parameters; :func:`frozen` is its most common
use. Both ``train`` (phase 1 of the student) and ``quantify`` import from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from kdexplain.models.layers import resolve_layer_name

__all__ = ["LayerFeature", "StopForward", "TruncatedModel", "frozen", "parameter_state"]


class StopForward(Exception):
    """Raised by :class:`TruncatedModel`'s hook once the layer's output is captured."""


class TruncatedModel(nn.Module):
    """``x -> feature of layer L``: the model's forward pass, stopped right after L.

    The layers above L are never computed, which saves their cost and keeps their
    parameters out of the autograd graph (so DDP does not wait for their gradients; freeze
    them with ``requires_grad_(False)`` before wrapping in DDP). The wrapped model is
    registered as ``self.model``; its state dict keys therefore carry a ``model.`` prefix,
    so save ``truncated.model.state_dict()``. The forward works under
    ``torch.func.functional_call`` and ``vmap`` (the stop is caught inside ``forward``).

    Parameters
    ----------
    model : nn.Module
    layer : str
        Module path or the paper's alias (``conv``, ``fc1``, ...).
    arch : str, optional
        Architecture for alias resolution (default: ``model.kdexplain_arch``).
    """

    def __init__(self, model: nn.Module, layer: str, arch: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.layer = resolve_layer_name(model, layer, arch)
        self._captured: torch.Tensor | None = None
        # The hook stays registered for the wrapper's lifetime; call `remove()` when the
        # model is used on its own again.
        self._handle = model.get_submodule(self.layer).register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        self._captured = output
        raise StopForward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the feature of layer L, shape ``(B, *feature_shape)``."""
        self._captured = None
        try:
            self.model(x)
        except StopForward:
            pass
        out, self._captured = self._captured, None
        if out is None:
            raise RuntimeError(f"layer {self.layer!r} was not reached by the forward pass of "
                               f"{type(self.model).__name__}; choose a module the forward calls")
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"layer {self.layer!r} returns a value of type {type(out).__name__}, not a "
                             "tensor; choose a module whose output is a tensor (its feature)")
        return out

    def remove(self) -> nn.Module:
        """Remove the hook and return the plain model."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        return self.model


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
        self.truncated: TruncatedModel | None = None

    def __enter__(self) -> LayerFeature:
        self.truncated = TruncatedModel(self.model, self.layer)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.truncated is not None:
            self.truncated.remove()
            self.truncated = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.truncated is None:
            raise RuntimeError("use LayerFeature as a context manager: `with LayerFeature(...) as phi:`")
        return self.truncated(x)


@contextmanager
def parameter_state(model: nn.Module, *, requires_grad: bool,
                    train: bool | None = None) -> Iterator[nn.Module]:
    """Set every parameter's ``requires_grad`` (and the mode) for the duration; restore both.

    Parameters
    ----------
    model : nn.Module
    requires_grad : bool
        The flag every parameter gets inside the block.
    train : bool, optional
        ``model.train(train)`` inside the block; None leaves the mode alone.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    if train is not None:
        model.train(train)
    for p, _ in flags:
        p.requires_grad_(requires_grad)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def frozen(model: nn.Module):
    """Evaluation mode and no weight gradients for the duration; both restored afterwards."""
    return parameter_state(model, requires_grad=False, train=False)
