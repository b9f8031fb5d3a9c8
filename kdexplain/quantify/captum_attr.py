"""Captum interface: the perturbation entropy as a Captum attribution."""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import PerturbationAttribution
from torch import nn

from kdexplain.quantify.engine import QuantifyResult, quantify, upsample_grid


class PerturbationEntropy(PerturbationAttribution):
    """Cheng et al.'s knowledge quantification as a Captum attribution.

    Built from a model and a layer, like Captum's layer attributions;
    :meth:`attribute` returns a tensor shaped like the inputs, so that
    ``captum.attr.visualization.visualize_image_attr`` and Captum's metrics
    (``infidelity``, ``sensitivity_max``) accept it.

    Sign convention: the attribution of a pixel is **minus the entropy** of its grid cell,
    ``-H_i = -(log sigma_i + 0.5 log(2 pi e))``, broadcast over the cell's pixels and the
    channels. Higher attribution = lower entropy = the layer's feature is more sensitive
    to that region = the network uses more information there. With ``relative=True`` the
    image's mean entropy is subtracted first (``mean_j H_j - H_i``), which is positive
    exactly where a cell carries more information than average.

    Parameters
    ----------
    model : nn.Module
    layer : str
        Module path or alias of the layer whose feature is explained (e.g. ``"fc1"``).
    **defaults
        Default keyword arguments of :func:`kdexplain.quantify` (``grid``, ``preset``,
        ``steps``, ``samples``, ``seed``, ``max_batch``, ...).
    """

    def __init__(self, model: nn.Module, layer: str, **defaults: Any) -> None:
        super().__init__(model)
        self.model = model
        self.layer = layer
        self.defaults = defaults
        self.last_result: QuantifyResult | None = None

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    def attribute(
        self,
        inputs: torch.Tensor,
        target: Any = None,
        additional_forward_args: Any = None,
        *,
        relative: bool = False,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Attribution maps, shaped like ``inputs``.

        Parameters
        ----------
        inputs : Tensor (B, C, H, W)
        target : ignored
            The feature of a layer is explained as a whole (all its units), so no target
            class is needed; accepted for Captum compatibility.
        additional_forward_args : None
            Not supported (the model must take the images alone); passing any raises.
        relative : bool
            Subtract each image's mean entropy first (see the class docstring).
        show_progress : bool
            A progress bar over optimisation steps.
        **kwargs
            Override the defaults of :func:`kdexplain.quantify` for this call.

        Returns
        -------
        Tensor (B, C, H, W), or a 1-tuple of it when ``inputs`` was a 1-tuple
            ``-H`` of each pixel's cell (nats per dimension). The full result (sigma,
            d0, traces) of the last call is kept in ``self.last_result``.
        """
        if additional_forward_args is not None:
            raise ValueError("PerturbationEntropy explains model(inputs) alone; "
                             "additional_forward_args are not supported")
        as_tuple = isinstance(inputs, tuple)
        if as_tuple:  # Captum's convention: a tuple in, a tuple out
            if len(inputs) != 1:
                raise ValueError("PerturbationEntropy takes a single input tensor")
            inputs = inputs[0]
        options = {**self.defaults, **kwargs}
        res = quantify(self.model, inputs, self.layer, show_progress=show_progress, **options)
        self.last_result = res
        ent = res.entropy.to(inputs.device, inputs.dtype)  # (B, g, g)
        if relative:
            ent = ent - ent.flatten(1).mean(1)[:, None, None]
        maps = upsample_grid(-ent, tuple(inputs.shape[-2:]))  # (B, H, W)
        attr = maps[:, None].expand(-1, inputs.shape[1], -1, -1).contiguous()
        return (attr,) if as_tuple else attr
