"""What every model of a run needs, built and checked before any training: the data, the
analysed layer, the initialiser, and a pretrained teacher that fits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kdexplain.config import ExperimentConfig
from kdexplain.data.preloaded import PreloadedDataset
from kdexplain.models import build_model, load_state_dict, resolve_layer_name
from kdexplain.train.distributed import DistContext
from kdexplain.train.features import upstream_parameters
from kdexplain.utils import derive_seed
from kdexplain.weights import resolve_weights

__all__ = ["RunSetup", "build_run_dataset", "check_pretrained", "count_classes", "kept_epochs",
           "setup_run", "transfer_body"]


def build_run_dataset(name: str, split: str, root: str | None, image_size: int,
                   options: dict[str, Any], preload: bool = False):
    from kdexplain.data import build_dataset  # the data room (lower): imported when needed

    ds = build_dataset(name, split=split, root=root, image_size=image_size, **options)
    if preload and len(ds) > 0:
        ds = PreloadedDataset(ds, desc=f"reading {name} {split}")
    return ds


def count_classes(ds, what: str) -> int:
    n = int(getattr(ds, "num_classes", 0))
    if n < 2:
        raise ValueError(f"{what} has {n} class(es); classification needs at least 2. Check the "
                         "dataset's root and options (e.g. the class list)")
    if len(ds) == 0:
        raise ValueError(f"{what} holds no images; check the dataset's root and options")
    return n


def _head_name(model: nn.Module) -> str:
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear head to re-initialise")
    return linears[-1]


def transfer_body(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    """Load ``state`` into ``model`` except its head (which keeps its fresh initialisation)."""
    head = _head_name(model)
    own = model.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in body.items()
           if k in own and own[k].shape != v.shape]
    missing = [k for k in own if not k.startswith(head + ".") and k not in body]
    unexpected = [k for k in body if k not in own]
    if bad or missing or unexpected:
        raise ValueError(f"{what} does not fit the architecture: shape mismatches {bad[:5]}, "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(body, strict=False)
    return model


def kept_epochs(config: ExperimentConfig, epochs: int) -> set[int]:
    return {e for e in config.checkpoints if e <= epochs}


@dataclass
class RunSetup:
    """What every model of a run needs: the data, the analysed layer, the initialiser."""

    train_set: Any
    val_set: Any
    num_classes: int
    layer: str
    has_above: bool
    common: dict[str, Any]
    init: Callable[..., nn.Module]


def check_pretrained(config: ExperimentConfig, num_classes: int) -> None:
    """A ``teacher.pretrained`` weights file exists and fits the architecture (checked before
    the run folder is written, so a wrong file leaves nothing behind)."""
    t, m = config.teacher, config.model
    if t.pretrained is None or t.pretrained == "torchvision":
        return
    path = resolve_weights(t.pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"teacher.pretrained: weights file {path} does not exist")
    with torch.random.fork_rng():  # building the probe must not move the run's generators
        transfer_body(build_model(m.arch, num_classes, **m.kwargs), load_state_dict(path), str(path))


def setup_run(config: ExperimentConfig, ctx: DistContext) -> RunSetup:
    """Build the target data and check the layer (before any training)."""
    d = config.data
    train_set = build_run_dataset(d.name, d.train_split, d.root, d.image_size, d.options, d.preload)
    val_set = build_run_dataset(d.name, d.val_split, d.root, d.image_size, d.options, d.preload)
    num_classes = count_classes(train_set, f"dataset {d.name!r} ({d.train_split})")
    m = config.model
    probe = build_model(m.arch, num_classes, **m.kwargs)
    layer = resolve_layer_name(probe, m.layer, m.arch)
    track = [resolve_layer_name(probe, t, m.arch) for t in m.track_layers]
    upstream = set(upstream_parameters(probe, layer, d.image_size))
    has_above = any(n not in upstream for n, _ in probe.named_parameters())
    del probe

    def init(key: str, classes: int = num_classes) -> nn.Module:
        torch.manual_seed(derive_seed(config.seed, "init", key))
        return build_model(m.arch, classes, **m.kwargs)

    common = {"ctx": ctx, "seed": config.seed, "arch": m.arch, "model_kwargs": m.kwargs,
              "layer": layer, "track_layers": track}
    return RunSetup(train_set, val_set, num_classes, layer, has_above, common, init)
