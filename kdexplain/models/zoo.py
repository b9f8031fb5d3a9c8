"""Architectures: torchvision's, used as they are, and a small CPU-friendly CNN.

Any classification model of torchvision (``torchvision.models.list_models(module=
torchvision.models)``) can be built and quantified; :data:`ARCHS` are the ones with the
paper's layer aliases, which a config may train.

Every model built here carries ``model.kdexplain_arch`` (its architecture name) so that
the paper's layer aliases resolve without further arguments.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdexplain.utils.io import load_torch_file
from kdexplain.utils.options import check_options
from kdexplain.vocabulary import ARCHS, TORCHVISION_ARCHS

__all__ = ["ARCHS", "TORCHVISION_ARCHS", "KDNet", "build_model", "check_arch", "load_model",
           "load_state_dict", "torchvision_classifiers"]


class KDNet(nn.Module):
    """A small VGG-style CNN for CPU work (the quickstart architecture).

    Laid out like torchvision's VGG so the paper's aliases carry over: ``features``
    (4 conv/ReLU/max-pool stages; ``conv`` = ``features.9``, the last convolution),
    ``avgpool`` (adaptive, 4x4), ``classifier`` = Linear (``fc1``), ReLU, Dropout,
    Linear (``fc2``), ReLU, Dropout, Linear (``fc3``).

    Parameters
    ----------
    num_classes : int
        Output logits.
    width : int
        Channels of the first stage; later stages have 2x, 4x, 4x.
    hidden : int
        Width of fc1 and fc2.
    dropout : float
        Dropout probability in the classifier.
    """

    def __init__(self, num_classes: int = 10, width: int = 16, hidden: int = 256,
                 dropout: float = 0.3) -> None:
        super().__init__()
        w = (width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        c_in = 3
        for c in w:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 16, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def torchvision_classifiers() -> list[str]:
    """The names of every classification architecture of the installed torchvision."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def check_arch(arch: str) -> str:
    """``arch`` itself when kdexplain can build it: ``kdnet`` or a torchvision classifier.

    Raises
    ------
    ValueError
        Naming the closest architectures that exist.
    """
    if arch in ARCHS:
        return arch
    known = ["kdnet", *torchvision_classifiers()]
    if arch in known:
        return arch
    close = difflib.get_close_matches(arch, known, n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"e.g. {', '.join(ARCHS)}"
    raise ValueError(f"unknown architecture {arch!r}: use kdnet or a torchvision classification "
                     f"model ({hint}; all: torchvision.models.list_models())")


def _resize_head(model: nn.Module, arch: str, num_classes: int) -> None:
    if arch.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    elif arch in TORCHVISION_ARCHS:  # alexnet, vgg*
        last = model.classifier[6]
        model.classifier[6] = nn.Linear(last.in_features, num_classes)
    else:  # any other torchvision classifier: its last linear layer is the head
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"{arch} has no linear head to re-size to {num_classes} classes")
        head = model.get_submodule(linears[-1])
        if head.out_features != num_classes:
            parent, _, child = linears[-1].rpartition(".")
            setattr(model.get_submodule(parent), child,
                    nn.Linear(head.in_features, num_classes, bias=head.bias is not None))


def build_model(arch: str, num_classes: int, *, pretrained: str | Path | None = None,
                **kwargs) -> nn.Module:
    """Build an architecture with a head of ``num_classes`` logits.

    Parameters
    ----------
    arch : str
        ``kdnet`` or any torchvision classification model (:func:`torchvision_classifiers`);
        the paper's layer aliases exist for :data:`ARCHS`.
    num_classes : int
        Size of the classification head.
    pretrained : str or Path, optional
        ``None``: random initialisation. A path: a state dict (or a kdexplain checkpoint)
        loaded before the head is re-sized, so ImageNet weights with a 1000-way head load
        as they are. ``"torchvision"``: torchvision's default ImageNet weights (needs the
        internet, or torch's hub cache).
    **kwargs
        Passed to :class:`KDNet` (``width``, ``hidden``, ``dropout``).
    """
    check_arch(arch)
    if arch == "kdnet":
        check_options(KDNet, kwargs, "kdnet", "model.kwargs", reserved=("num_classes",))
        model = KDNet(num_classes=num_classes, **kwargs)
        if pretrained is not None:
            model.load_state_dict(load_state_dict(pretrained), strict=False)
    else:
        import torchvision

        if kwargs:
            raise ValueError(f"options {sorted(kwargs)} apply to kdnet only, not {arch}")
        if pretrained == "torchvision":
            try:
                model = torchvision.models.get_model(arch, weights="DEFAULT")
            except Exception as e:  # URLError, OSError, ...: offline
                raise RuntimeError(
                    f"could not load torchvision's pretrained weights for {arch} ({e}). "
                    "This needs the internet (or the file in torch's hub cache, "
                    f"{torch.hub.get_dir()}). Offline, download the weights elsewhere and "
                    "pass the state-dict file as `pretrained: /path/to/weights.pth`."
                ) from e
        elif pretrained is None and arch not in TORCHVISION_ARCHS:
            model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
        else:
            model = torchvision.models.get_model(arch, weights=None)
            if pretrained is not None:
                state = load_state_dict(pretrained)
                missing, unexpected = model.load_state_dict(state, strict=False)
                if len(unexpected) > 0 or len(missing) > 2:
                    raise ValueError(
                        f"{pretrained} does not fit {arch}: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
        _resize_head(model, arch, num_classes)
    model.kdexplain_arch = arch
    return model


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.pth`` file: a plain state dict, or a checkpoint holding
    one under ``model``/``state_dict`` (kdexplain and common training scripts)."""
    path = Path(path)
    obj = load_torch_file(path, what="weights file")
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict (a mapping of parameter names to tensors)")
    # checkpoints saved from DDP or torch.compile carry prefixes
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in obj.items()}


def load_model(path: str | Path, arch: str | None = None, num_classes: int | None = None,
               **kwargs) -> nn.Module:
    """Rebuild a model from a file: a kdexplain checkpoint, or a state dict plus ``arch``.

    Parameters
    ----------
    path : str or Path
        A kdexplain checkpoint (a dict holding ``model``, ``arch``, ``num_classes`` and
        ``model_kwargs``), or a plain state-dict file (then ``arch`` is required).
    arch : str, optional
        Architecture; overrides or completes what the file says.
    num_classes : int, optional
        Head size; default: the checkpoint's, or inferred from the state dict's last
        weight matrix.
    **kwargs
        :class:`KDNet` options, when not stored in the checkpoint.

    Returns
    -------
    nn.Module in evaluation mode, with ``kdexplain_arch`` set.
    """
    path = Path(path)
    obj = load_torch_file(path, what="model file")
    meta = obj if isinstance(obj, dict) and "arch" in obj else {}
    arch = arch or meta.get("arch")
    if arch is None:
        raise ValueError(f"{path} is a plain state dict: say which architecture it is "
                         f"(--arch): kdnet or a torchvision classifier, e.g. "
                         f"{', '.join(ARCHS[1:4])}, mobilenet_v3_small")
    state = load_state_dict(path)
    if num_classes is None:
        num_classes = meta.get("num_classes")
    if num_classes is None:
        head = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
        if not head:
            raise ValueError(f"cannot infer the number of classes from {path}; pass num_classes")
        num_classes = int(head[-1].shape[0])
    stored_kwargs = meta.get("model_kwargs", {})
    if not isinstance(stored_kwargs, dict):
        raise ValueError(f"{path}: model_kwargs must be a mapping, got "
                         f"{type(stored_kwargs).__name__}")
    model_kwargs = {**stored_kwargs, **kwargs}
    if arch == "kdnet" and not meta:
        # a plain kdnet state dict: its widths are in the weights' shapes
        if "features.0.weight" in state and "classifier.0.weight" in state:
            model_kwargs.setdefault("width", int(state["features.0.weight"].shape[0]))
            model_kwargs.setdefault("hidden", int(state["classifier.0.weight"].shape[0]))
    return model_for_state(arch, num_classes, model_kwargs, state, path).eval()


def model_for_state(arch: str, num_classes: Any, model_kwargs: dict[str, Any],
                    state: dict[str, torch.Tensor], source: str | Path) -> nn.Module:
    """Build ``arch`` and load ``state`` into it, after checking that they fit.

    The metadata (``num_classes``, ``model_kwargs``) are checked against the state dict's
    shapes on a model built without memory (PyTorch's meta device) before the real one is
    built, so that a wrong ``--arch`` or a corrupt ``hidden: 10**9`` is one clear error, not
    a page of keys or a terabyte allocation; the weights must be finite.

    Raises
    ------
    ValueError
        Naming ``source`` and what does not fit.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"{source}: num_classes must be a positive integer, got {num_classes!r}")
    with torch.device("meta"):
        probe = build_model(arch, num_classes, **model_kwargs)
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    wrong = [k for k in expected if k in got and expected[k] != got[k]]
    if missing or unexpected or wrong:
        example = (f"{wrong[0]}: file {got[wrong[0]]}, model {expected[wrong[0]]}" if wrong
                   else f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}")
        raise ValueError(
            f"{source} does not fit {arch} with {num_classes} classes and options "
            f"{model_kwargs or '{}'}: {len(wrong)} shape(s) differ, {len(missing)} key(s) "
            f"missing, {len(unexpected)} unexpected (e.g. {example}); give the architecture "
            "and options the file was saved from (--arch)")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{source} holds non-finite weights (NaN or infinity) in {bad[0]}"
                         f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}; the "
                         "training diverged or the file is corrupt: use another checkpoint")
    model = build_model(arch, num_classes, **model_kwargs)
    model.load_state_dict(state)
    return model
