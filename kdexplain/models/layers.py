"""Naming layers by module path, with the paper's aliases.

A layer is named by its module path in the model (``fc``, ``classifier.4``,
``features.28``, ``layer4.1.conv2``), the same path ``model.get_submodule`` takes.
The paper's names (``conv``, ``fc1``, ``fc2``, ``fc3``) are aliases resolved per
architecture (:data:`LAYER_ALIASES`). The *feature* of a layer is that module's output,
i.e. before any activation that follows it.
"""

from __future__ import annotations

import difflib

from torch import nn

#: The paper's layer names per architecture -> module path (torchvision layouts).
#: ``conv`` is the last convolution (its pre-ReLU output, as the original code read it);
#: ``fc1``-``fc3`` are the linear layers of the classifier. ResNets have one linear layer,
#: so only ``fc3`` (= ``fc``) exists there; ``conv`` is the last block's last batch norm,
#: the block's output before the residual addition and ReLU.
LAYER_ALIASES: dict[str, dict[str, str]] = {
    "kdnet": {"conv": "features.9", "fc1": "classifier.0", "fc2": "classifier.3", "fc3": "classifier.6"},
    "vgg11": {"conv": "features.18", "fc1": "classifier.0", "fc2": "classifier.3", "fc3": "classifier.6"},
    "vgg16": {"conv": "features.28", "fc1": "classifier.0", "fc2": "classifier.3", "fc3": "classifier.6"},
    "vgg19": {"conv": "features.34", "fc1": "classifier.0", "fc2": "classifier.3", "fc3": "classifier.6"},
    "alexnet": {"conv": "features.10", "fc1": "classifier.1", "fc2": "classifier.4", "fc3": "classifier.6"},
    "resnet18": {"conv": "layer4.1.bn2", "fc3": "fc"},
    "resnet34": {"conv": "layer4.2.bn2", "fc3": "fc"},
    "resnet50": {"conv": "layer4.2.bn3", "fc3": "fc"},
    "resnet101": {"conv": "layer4.2.bn3", "fc3": "fc"},
    "resnet152": {"conv": "layer4.2.bn3", "fc3": "fc"},
}


class LayerNotFoundError(KeyError, ValueError):
    """A layer name that is neither a module path of the model nor a known alias."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def layer_names(model: nn.Module) -> list[str]:
    """All module paths of ``model`` (the root, ``""``, excluded), in definition order."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer_name(model: nn.Module, layer: str, arch: str | None = None) -> str:
    """The module path that ``layer`` names in ``model``.

    ``layer`` is a module path, or an alias from :data:`LAYER_ALIASES` for ``arch``
    (``arch`` defaults to ``model.kdexplain_arch`` when the model was built by kdexplain).

    Raises
    ------
    LayerNotFoundError
        Naming the closest valid module paths and the aliases of the architecture.
    """
    if isinstance(layer, nn.Module):  # the module object itself
        found = [n for n, m in model.named_modules() if m is layer and n]
        if not found:
            raise LayerNotFoundError(
                f"the {type(layer).__name__} given as the layer is not a module of this "
                f"{type(model).__name__} (a module of another model, or a copy?); give its "
                "module path, e.g. 'features.3'")
        return found[0]
    if not isinstance(layer, str):
        raise LayerNotFoundError(f"layer must be a module path (str) or a module of the model, "
                                 f"got {type(layer).__name__}")
    names = layer_names(model)
    if layer in names:
        return layer
    arch = arch or getattr(model, "kdexplain_arch", None)
    aliases = LAYER_ALIASES.get(arch or "", {})
    if layer in aliases and aliases[layer] in names:
        return aliases[layer]
    close = difflib.get_close_matches(layer, names + list(aliases), n=5, cutoff=0.3)
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    msg = f"layer {layer!r} does not exist in this {type(model).__name__}"
    if arch:
        msg += f" ({arch})"
    msg += "."
    if close:
        msg += f" Closest valid names: {', '.join(close)}."
    if aliases:
        msg += " Aliases: " + ", ".join(f"{k}={v}" for k, v in aliases.items()) + "."
    shown = leaves if len(leaves) <= 40 else leaves[:20] + ["..."] + leaves[-10:]
    msg += f" Layers: {', '.join(shown)}."
    raise LayerNotFoundError(msg)


def get_layer(model: nn.Module, layer: str, arch: str | None = None) -> nn.Module:
    """The module that ``layer`` (a module path or alias) names in ``model``."""
    return model.get_submodule(resolve_layer_name(model, layer, arch))
