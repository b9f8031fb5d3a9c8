"""Quantus adapter: the perturbation-entropy map as a Quantus ``explain_func``.

Quantus (``pip install -e ".[quantus]"``) evaluates explanations with metrics that call
``explain_func(model, inputs, targets, **explain_func_kwargs)`` and expect a numpy array
shaped like the inputs with the channel axis summed away (``(B, 1, H, W)``). This module
needs no part of Quantus itself; it is named after the package it serves::

    import quantus
    from kdexplain.quantus import explain_func

    metric = quantus.RelevanceMassAccuracy(disable_warnings=True)
    scores = metric(model=model, x_batch=x, y_batch=y, s_batch=masks, device="cpu",
                    explain_func=explain_func,
                    explain_func_kwargs={"layer": "conv", "grid": 16})

Which map: ``map="normalized"`` (the default here) is non-negative, which mass-based
metrics (``RelevanceMassAccuracy``, Quantus's default ``normalise_by_max``) need; rank-based
metrics (``PointingGame``, ``RelevanceRankAccuracy``) give the same scores on every map.
See docs/attribution.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from kdexplain.quantification.captum_attr import PerturbationEntropy

#: Keywords Quantus adds to ``explain_func_kwargs`` itself; they do not reach the engine.
QUANTUS_KEYWORDS = ("device", "channel_first", "reduce_axes", "keepdims", "softmax",
                    "method", "xai_lib")


def explain_func(model: nn.Module, inputs: np.ndarray | torch.Tensor,
                 targets: np.ndarray | torch.Tensor | int | None, *,
                 layer: str | nn.Module | None = None, map: str = "normalized",  # noqa: A002
                 **kwargs: Any) -> np.ndarray:
    """Perturbation-entropy maps in Quantus's ``explain_func`` convention.

    Parameters
    ----------
    model : nn.Module
        The network (Quantus passes ``model`` as given to the metric).
    inputs : ndarray or Tensor (B, C, H, W)
        Images in the network's input space, channels first.
    targets : ndarray or Tensor (B,), int or None
        Class per image. Used when ``layer`` is None: the class-conditional map of the
        target logit (see :class:`kdexplain.PerturbationEntropy`). With a ``layer`` the
        whole feature of the layer is explained and ``targets`` are not used (Quantus always
        passes them; the caller chose a class-free map by naming a layer).
    layer : str, nn.Module or None
        The layer whose feature is explained; None: the target logit.
    map : "normalized", "neg_entropy" or "relative"
        Which map (see :func:`kdexplain.quantification.captum_attr.entropy_map`).
    **kwargs
        Options of :func:`kdexplain.quantify` (``grid``, ``steps``, ``samples``, ``seed``,
        ``max_batch``, ...). Quantus's own keywords (``device``, ``channel_first``, ...) are
        accepted; ``device`` places the computation, the others are not needed here.

    Returns
    -------
    ndarray (B, 1, H, W), float32
        The map of each pixel's cell (one value per pixel; the channels carry the same
        value, so one is kept).
    """
    device = kwargs.get("device")
    options = {k: v for k, v in kwargs.items() if k not in QUANTUS_KEYWORDS}
    if kwargs.get("channel_first") is False:
        raise ValueError("kdexplain.quantus.explain_func takes channels-first images "
                         "(B, C, H, W); pass channel_first=True or transpose x_batch")
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs,
                        dtype=torch.float32)
    if x.ndim != 4:
        raise ValueError(f"inputs must be (B, C, H, W) images, got shape {tuple(x.shape)}")
    if device is not None:
        options["device"] = device
    target = None
    if layer is None:
        if targets is None:
            raise ValueError("explain_func without a layer explains the target logit: "
                             "give targets (y_batch), or name a layer")
        target = torch.as_tensor(np.asarray(targets)).long().flatten()
    pe = PerturbationEntropy(model, layer, **options)
    attr = pe.attribute(x, target=target, map=map)
    return attr[:, :1].detach().cpu().numpy().astype(np.float32)
