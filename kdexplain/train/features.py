"""Layer features for distillation, and which parameters feed a layer.

The feature of layer L is its module's output (before the activation that follows),
taken with a forward hook, so torchvision models are used as they are. Phase 1 of the
student (docs/method.md section 2) needs only the network up to L: :class:`TruncatedModel` (in
:mod:`kdexplain.models.features`, re-exported here) stops the forward pass there and
returns the feature, as a normal module that ``DistributedDataParallel`` can wrap.
Phase 2 freezes every parameter up to and including L: :func:`upstream_parameters` finds
them by tracing the autograd graph of the feature, which is exact for any architecture
(skip connections included), unlike a guess from registration order.
"""

from __future__ import annotations

import torch
from torch import nn

from kdexplain.models import resolve_layer_name
from kdexplain.models.features import TruncatedModel, parameter_state

__all__ = ["TruncatedModel", "check_feature_shapes", "upstream_parameters"]


@torch.no_grad()
def _probe_input(model: nn.Module, image_size: int | tuple[int, int]) -> torch.Tensor:
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    p = next(model.parameters())
    return torch.randn(2, 3, h, w, device=p.device, dtype=p.dtype)


def upstream_parameters(model: nn.Module, layer: str, image_size: int | tuple[int, int],
                        arch: str | None = None) -> list[str]:
    """Names of the parameters that the output of ``layer`` depends on (L's own included).

    Traced through autograd on a random input of ``2 x 3 x image_size x image_size``: a
    parameter is upstream of L exactly when it is a leaf of the feature's graph. These are
    the parameters phase 2 freezes ("everything up to and including L"). ``image_size``
    is an int or ``(H, W)``.

    Returns
    -------
    list of str
        Parameter names in ``model.named_parameters()`` order.
    """
    layer = resolve_layer_name(model, layer, arch)
    named = [(n, p) for n, p in model.named_parameters()]
    trunc = TruncatedModel(model, layer)
    # eval: batch norm on a 2-image random batch must not touch running stats
    try:
        with parameter_state(model, requires_grad=True, train=False), torch.enable_grad():
            feature = trunc(_probe_input(model, image_size))
            grads = torch.autograd.grad(feature.sum(), [p for _, p in named], allow_unused=True)
    finally:
        trunc.remove()
    return [n for (n, _), g in zip(named, grads, strict=True) if g is not None]


@torch.no_grad()
def check_feature_shapes(teacher: nn.Module, student: nn.Module, layer: str,
                         image_size: int | tuple[int, int]) -> tuple[int, ...]:
    """Check that layer L gives features of one shape in teacher and student.

    Returns
    -------
    tuple of int
        The feature shape without the batch dimension.

    Raises
    ------
    ValueError
        Naming both shapes, when they differ.
    """
    shapes = []
    for net in (teacher, student):
        trunc = TruncatedModel(net, layer)
        was_training = net.training
        try:
            net.eval()
            shapes.append(tuple(trunc(_probe_input(net, image_size)).shape[1:]))
        finally:
            trunc.remove()
            net.train(was_training)
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"layer {layer!r} gives features of shape {shapes[0]} in the teacher but {shapes[1]} "
            "in the student (per image): feature distillation needs the same architecture and "
            "options (model.kwargs) for both, and the same input size")
    return shapes[0]
