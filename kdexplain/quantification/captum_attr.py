"""Captum interface: the perturbation entropy as a Captum attribution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import nn

from kdexplain.quantification.engine import QuantifyResult, quantify, upsample_grid

#: The maps :meth:`PerturbationEntropy.attribute` returns (``map=``); see docs/attribution.md.
ATTRIBUTION_MAPS = ("neg_entropy", "relative", "normalized")


class _ClassLogit(nn.Module):
    """``x -> z_c(x)``, the logit of one class, as the output of a named module ``logit``.

    The engine reads the feature of a module by its path; this wrapper gives the target
    logit one (``"logit"``) without touching the model.
    """

    def __init__(self, model: nn.Module, cls: int) -> None:
        super().__init__()
        self.model = model
        self.cls = int(cls)
        self.logit = nn.Identity()
        self.train(model.training)  # the engine restores this mode on the model afterwards

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if out.ndim != 2 or not 0 <= self.cls < out.shape[1]:
            raise ValueError(f"target {self.cls} does not index the model's output of shape "
                             f"{tuple(out.shape)}: give a class in [0, {out.shape[-1]})")
        return self.logit(out[:, self.cls:self.cls + 1])


class _Logits(nn.Module):
    """``x -> model(x)`` as the output of a named module ``logits``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.logits = nn.Identity()
        self.train(model.training)  # the engine restores this mode on the model afterwards

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.model(x))


def module_path(model: nn.Module, layer: str | nn.Module | None) -> str | None:
    """The module path of ``layer`` in ``model`` (a string or alias is returned as is).

    Raises
    ------
    ValueError
        When ``layer`` is a module that is not a submodule of ``model``.
    """
    if layer is None or isinstance(layer, str):
        return layer
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be a module path, an alias or a module of the model, "
                        f"got {type(layer).__name__}")
    for name, module in model.named_modules():
        if module is layer and name:
            return name
    raise ValueError(f"the {type(layer).__name__} given as layer is not a submodule of this "
                     f"{type(model).__name__}: pass one of model.named_modules() or its path")


def _targets(target: Any, batch: int) -> list[int]:
    """One class index per image from Captum's target forms (int, tensor, list of int)."""
    if isinstance(target, torch.Tensor):
        if target.ndim > 1 or (target.ndim == 1 and target.numel() not in (1, batch)):
            raise ValueError(f"target must be a class index or one per image ({batch}), "
                             f"got a tensor of shape {tuple(target.shape)}")
        target = target.flatten().tolist()
    if isinstance(target, int):
        return [target] * batch
    if isinstance(target, Sequence) and all(isinstance(t, int) for t in target):
        if len(target) == 1:
            return [int(target[0])] * batch
        if len(target) == batch:
            return [int(t) for t in target]
    raise ValueError(f"target must be a class index, or one class index per image ({batch}), "
                     f"got {target!r}; multi-dimensional output indices are not supported")


def batch_option(options: dict[str, Any], batch: int) -> dict[str, Any]:
    """Map Captum's batching knobs onto :func:`kdexplain.quantify`'s ``max_batch``.

    ``perturbations_per_eval=p`` (Captum: ``p`` perturbed copies of the whole input batch
    per forward pass) becomes ``max_batch = p * batch``; ``internal_batch_size=n`` (Captum:
    ``n`` rows per forward pass) becomes ``max_batch = n``.
    """
    options = dict(options)
    ppe = options.pop("perturbations_per_eval", None)
    ibs = options.pop("internal_batch_size", None)
    wanted = {}
    if ppe is not None:
        if int(ppe) < 1:
            raise ValueError(f"perturbations_per_eval must be >= 1, got {ppe}")
        wanted["perturbations_per_eval"] = int(ppe) * batch
    if ibs is not None:
        wanted["internal_batch_size"] = int(ibs)
    if options.get("max_batch") is not None:
        wanted["max_batch"] = int(options["max_batch"])
    if len(set(wanted.values())) > 1:
        given = ", ".join(f"{k} -> {v} rows" for k, v in wanted.items())
        raise ValueError(f"conflicting forward batch sizes ({given}); give only one of "
                         "max_batch, perturbations_per_eval, internal_batch_size")
    if wanted:
        options["max_batch"] = next(iter(wanted.values()))
    return options


def merge_results(parts: list[tuple[list[int], QuantifyResult]], batch: int) -> QuantifyResult:
    """One :class:`QuantifyResult` from single-model results on disjoint image subsets.

    ``parts`` holds (image indices, result); traces are padded with NaN to the longest.
    """
    first = parts[0][1]
    steps = max(r.loss_trace.shape[0] for _, r in parts)
    out: dict[str, Any] = {}
    for name, value in first.__dict__.items():
        if not isinstance(value, torch.Tensor):
            continue
        if name.endswith("_trace"):
            full = torch.full((steps, batch), float("nan"), dtype=value.dtype)
            for idx, r in parts:
                tr = getattr(r, name)
                full[:tr.shape[0], idx] = tr
        else:
            full = torch.empty((batch, *value.shape[1:]), dtype=value.dtype)
            for idx, r in parts:
                full[idx] = getattr(r, name)
        out[name] = full
    keys = [""] * batch
    for idx, r in parts:
        for i, k in zip(idx, r.image_keys, strict=True):
            keys[i] = k
    return QuantifyResult(**out, image_keys=keys, layer=first.layer,
                          settings={**first.settings, "per_target_calls": len(parts)})


def entropy_map(entropy: torch.Tensor, kind: str) -> torch.Tensor:
    """The grid map of ``kind`` (one of :data:`ATTRIBUTION_MAPS`) from entropies (B, g, g).

    * ``neg_entropy``: ``-H_i`` (nats per dimension; all positive in practice);
    * ``relative``: ``mean_j H_j - H_i`` (zero mean per image, positive where a cell
      carries more information than the image's average);
    * ``normalized``: ``(max_j H_j - H_i) / (max_j H_j - min_j H_j)`` in [0, 1]: 1 at the
      most used cell, 0 at the least used; an image whose cells are all equal gets 0.
      An increasing affine map of ``-H`` per image, so rankings (pointing game, rank
      accuracy) are those of ``-H``; mass ratios are well defined on it.
    """
    if kind == "neg_entropy":
        return -entropy
    if kind == "relative":
        return entropy.flatten(1).mean(1)[:, None, None] - entropy
    if kind == "normalized":
        flat = entropy.flatten(1)
        hi, lo = flat.amax(1)[:, None, None], flat.amin(1)[:, None, None]
        span = hi - lo
        return torch.where(span > 0, (hi - entropy) / span.clamp(min=1e-12),
                           torch.zeros_like(entropy))
    raise ValueError(f"map must be one of {', '.join(ATTRIBUTION_MAPS)}, got {kind!r}")


class PerturbationEntropy(PerturbationAttribution):
    """Cheng et al.'s knowledge quantification as a Captum attribution.

    Built from a model and a layer, like Captum's layer attributions;
    :meth:`attribute` returns a tensor shaped like the inputs, so that
    ``captum.attr.visualization.visualize_image_attr``, ``NoiseTunnel`` and Captum's
    metrics (``infidelity``, ``sensitivity_max``) accept it.

    What is explained (the feature ``phi`` of docs/method.md section 3):

    * with a ``layer``: the layer's whole feature (all its units, after ``feature_transform``);
      no class enters, so ``target`` is refused;
    * with ``layer=None``: the model's output logits; a ``target`` class ``c`` makes it
      class-conditional, ``phi(x) = z_c(x)`` (one dimension, no ReLU), so that the
      distortion is ``D(sigma) = E_eps (z_c(x~) - z_c(x))^2`` and the entropy map says how
      much information from each cell the logit of class ``c`` uses. Without ``target``
      the feature is the whole logit vector.

    Sign convention (``map="neg_entropy"``, the default): the attribution of a pixel is
    **minus the entropy** of its grid cell, ``-H_i = -(log sigma_i + 0.5 log(2 pi e))``,
    broadcast over the cell's pixels and the channels. Higher attribution = lower entropy
    = the feature is more sensitive to that region = the network uses more information
    there. Other maps: see :func:`entropy_map` and docs/attribution.md.

    Parameters
    ----------
    model : nn.Module
    layer : str, nn.Module or None
        Module path, alias (``"fc1"``, ``"conv"``) or the module object itself
        (``model.fc``) whose feature is explained; ``None``: the output logits.
    **defaults
        Default keyword arguments of :func:`kdexplain.quantify` (``grid``, ``preset``,
        ``steps``, ``samples``, ``seed``, ``max_batch``, ...), and Captum's
        ``perturbations_per_eval`` / ``internal_batch_size`` (see :meth:`attribute`).
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None,
                 **defaults: Any) -> None:
        super().__init__(model)
        self.model = model
        self.layer = module_path(model, layer)
        self.defaults = defaults
        self.last_result: QuantifyResult | None = None

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor],
        target: Any = None,
        additional_forward_args: Any = None,
        *,
        map: str = "neg_entropy",  # noqa: A002 - Captum-style keyword
        show_progress: bool = False,
        **kwargs: Any,
    ) -> torch.Tensor | tuple[torch.Tensor]:
        """Attribution maps, shaped like ``inputs``.

        Parameters
        ----------
        inputs : Tensor (B, C, H, W), or a 1-tuple of it
        target : int, list of int or LongTensor (B,), optional
            Only with ``layer=None``: the class whose logit is explained, one for all
            images or one per image. With a layer it is refused (a layer's feature has
            no class).
        additional_forward_args : None
            Not supported (the model must take the images alone); passing any raises.
        map : "neg_entropy", "relative" or "normalized"
            Which map (see :func:`entropy_map`): ``-H``; ``mean H - H``; ``-H`` scaled to
            [0, 1] per image (non-negative, for mass-based metrics and ``sign="positive"``).
        show_progress : bool
            Progress over the optimisation steps (Captum's knob): a bar on a terminal, off
            one a line with the rate and ETA at least every 30 s.
        **kwargs
            Override the defaults of :func:`kdexplain.quantify` for this call. Captum's
            ``perturbations_per_eval=p`` means ``max_batch = p * B`` (p perturbed copies of
            the batch per forward pass); ``internal_batch_size=n`` means ``max_batch = n``.

        Returns
        -------
        Tensor (B, C, H, W), or a 1-tuple of it when ``inputs`` was a 1-tuple
            The map of each pixel's cell, equal in every channel. The full result (sigma,
            d0, traces) of the last call is kept in ``self.last_result``.
        """
        if additional_forward_args is not None:
            raise ValueError("PerturbationEntropy explains model(inputs) alone; "
                             "additional_forward_args are not supported")
        if map not in ATTRIBUTION_MAPS:
            raise ValueError(f"map must be one of {', '.join(ATTRIBUTION_MAPS)}, got {map!r}")
        as_tuple = isinstance(inputs, tuple)
        if as_tuple:  # Captum's convention: a tuple in, a tuple out
            if len(inputs) != 1:
                raise ValueError("PerturbationEntropy takes a single input tensor")
            inputs = inputs[0]
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"inputs must be a (B, C, H, W) tensor, got {shape}")
        options = batch_option({**self.defaults, **kwargs}, inputs.shape[0])
        options["show_progress"] = show_progress
        res = self._quantify(inputs.detach(), target, options)
        self.last_result = res
        ent = res.entropy.to(inputs.device, inputs.dtype)  # (B, g, g)
        maps = upsample_grid(entropy_map(ent, map), tuple(inputs.shape[-2:]))  # (B, H, W)
        attr = maps[:, None].expand(-1, inputs.shape[1], -1, -1).contiguous()
        return (attr,) if as_tuple else attr

    def _quantify(self, inputs: torch.Tensor, target: Any, options: dict[str, Any]
                  ) -> QuantifyResult:
        """The engine call: the layer's feature, the logits, or one call per target class."""
        arch = options.pop("arch", getattr(self.model, "kdexplain_arch", None))
        if self.layer is not None:
            if target is not None:
                raise ValueError(
                    f"target={target!r} given, but this PerturbationEntropy explains the whole "
                    f"feature of layer {self.layer!r}, which has no class; drop target, or build "
                    "PerturbationEntropy(model) (layer=None) for the class-conditional map of "
                    "the target logit")
            return quantify(self.model, inputs, self.layer, arch=arch, **options)
        options.setdefault("feature_transform", "identity")  # a ReLU would drop negative logits
        if target is None:
            return quantify(_Logits(self.model), inputs, "logits", arch=arch, **options)
        classes = _targets(target, inputs.shape[0])
        parts = []
        keys = options.pop("image_keys", None)
        if keys is not None and len(keys) != len(classes):
            raise ValueError(f"got {len(keys)} image keys for {len(classes)} images")
        for cls in sorted(set(classes)):
            idx = [i for i, c in enumerate(classes) if c == cls]
            # per-image noise streams: an image's result does not depend on its group
            res = quantify(_ClassLogit(self.model, cls), inputs[idx], "logit", arch=arch,
                           image_keys=None if keys is None else [keys[i] for i in idx],
                           **options)
            parts.append((idx, res))
        return merge_results(parts, inputs.shape[0])

