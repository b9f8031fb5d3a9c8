"""``kdexplain quantify``: learn entropy grids for a model's layer on a set of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("quantify")(quantify_command)


def _dataset_options(checkpoint: Path, dataset: str, data_root: Optional[Path],
                     image_size: Optional[int], mask_dir: Optional[Path], split: str):
    """(name, root, image_size, build_dataset keyword arguments) of ``--dataset``: a folder,
    or a dataset name, completed by the run's data options when the checkpoint is a run's."""
    from kdexplain.config import find_run_config, load_config

    if Path(dataset).is_dir():
        options = {"mask_dir": mask_dir} if mask_dir is not None else {}
        return "folder", Path(dataset), image_size or 224, options
    if mask_dir is not None:
        raise ValueError(f"--mask-dir gives the masks of a folder of images; --dataset "
                         f"{dataset} is not a folder (built-in datasets bring their own masks)")
    run_config = find_run_config(checkpoint)
    data = load_config(run_config).data if run_config is not None else None
    options: dict = {"split": split}
    if data is not None and data.name == dataset:
        extra = {k: v for k, v in data.options.items() if k != "augment"}
        typer.echo(f"dataset options of the run ({run_config}): "
                   + (", ".join(f"{k}={v}" for k, v in extra.items()) or "none"))
        options.update(extra)
        data_root = data_root or (Path(data.root) if data.root else None)
        image_size = image_size or data.image_size
    return dataset, data_root, image_size or (64 if dataset == "scenes" else 224), options


def _head_size(model) -> Optional[int]:
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return int(linears[-1].out_features) if linears else None


def quantify_command(
    checkpoint: Annotated[Path, typer.Option(help="A kdexplain checkpoint (.pt), or a state-dict file together with --arch.")],
    layer: Annotated[str, typer.Option(help="Module path (classifier.0, layer4.1.conv2) or alias (conv, fc1, fc2, fc3).")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    dataset: Annotated[str, typer.Option(help="A built-in dataset name (scenes, cub, voc, pets, ilsvrc) or a folder of images.")] = "scenes",
    arch: Annotated[Optional[str], typer.Option(help="Architecture of a plain state-dict file: kdnet or any torchvision classification model (resnet18, vgg16, mobilenet_v3_small, ...).")] = None,
    num_classes: Annotated[Optional[int], typer.Option(help="Head size of a plain state-dict file (default: inferred).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Root of a real dataset on disk.")] = None,
    mask_dir: Annotated[Optional[Path], typer.Option(help="Foreground masks of a folder of images: a PNG at each image's relative path (`kdexplain docs data`); adds the concept summary per image.")] = None,
    split: Annotated[str, typer.Option(help="Dataset split.")] = "val",
    n_images: Annotated[int, typer.Option(help="Number of images (the first ones of the split).")] = 16,
    image_size: Annotated[Optional[int], typer.Option(help="Input size (default 64 for scenes, 224 otherwise).")] = None,
    grid: Annotated[int, typer.Option(help="Cells per side of the sigma grid.")] = 16,
    preset: Annotated[str, typer.Option(help="default (closed-form start, then stochastic Newton steps on log sigma), adam (Adam on log sigma) paper (the original's descent path and kept iterate, 16 samples per step, stopped past the target) or reference (the original algorithm).")] = "default",
    steps: Annotated[Optional[int], typer.Option(help="Maximum optimisation steps (default: the preset's).")] = None,
    samples: Annotated[Optional[int], typer.Option(help="Noise samples per step (default: the preset's).")] = None,
    entropy_weight: Annotated[Optional[float], typer.Option(help="lambda_H (default: 7, or 6 for ResNets).")] = None,
    feature_transform: Annotated[Optional[str], typer.Option(help="relu (the original) or identity.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, or auto.")] = "auto",
    max_batch: Annotated[Optional[int], typer.Option(help="Most perturbed images per forward pass (memory bound).")] = None,
    heatmaps: Annotated[bool, typer.Option("--heatmaps", help="Draw a heatmap PNG per image, named after it.")] = False,
    concept_threshold: Annotated[float, typer.Option(help="b of the concept rule H_bar - H_i > b, for the summary with --mask-dir (0.2 is the paper's, set for the reference preset; `kdexplain calibrate` finds the default preset's b').")] = 0.2,
) -> None:
    """Quantify the knowledge a layer uses: entropy grids per image (docs/method.md section 3).

    Writes OUT/quantify.pt (all grids and traces), OUT/cells.csv (one row per image and
    cell), OUT/images.csv (one row per image; with --mask-dir also the mean foreground and
    background entropy and the concept counts N_fg, N_bg), OUT/run.json (settings,
    versions) and, with --heatmaps, OUT/heatmaps/<image>.png. A checkpoint of a kdexplain run is read with the dataset
    options it was trained with (classes, ...; from the run's config.yaml) when --dataset
    names the run's dataset.
    """
    settings = _check_quantify_options(
        n=n_images, grid=grid, max_batch=max_batch, out=out, preset=preset,
        settings={"steps": steps, "samples": samples, "entropy_weight": entropy_weight,
                  "feature_transform": feature_transform})
    import torch

    from kdexplain.data import build_dataset, denormalize, mask_to_grid, readable_items
    from kdexplain.models import load_model, resolve_layer_name
    from kdexplain.quantification import quantify
    from kdexplain.quantification.io import result_tables, save_result, write_csv
    from kdexplain.quantification.plot import plot_entropy_overlay, shared_scale
    from kdexplain.utils import environment_info, write_json
    from kdexplain.utils.device import resolve_device

    dev = str(resolve_device(device))
    model = load_model(checkpoint, arch=arch, num_classes=num_classes)
    resolve_layer_name(model, layer, arch)  # a bad layer before any image is read
    name, root, size, kwargs = _dataset_options(checkpoint, dataset, data_root, image_size,
                                                mask_dir, split)
    ds = build_dataset(name, root=root, image_size=size, **kwargs)
    head = _head_size(model)
    if getattr(ds, "num_classes", 0) and head and ds.num_classes != head:
        typer.secho(f"warning: the model has {head} classes, the dataset {name} "
                    f"{ds.num_classes} ({', '.join(ds.class_names[:12])})",
                    fg=typer.colors.YELLOW, err=True)
    items = readable_items(ds, range(len(ds)), limit=n_images)  # corrupt files left out, never replaced
    count = len(items)
    if count == 0:
        raise ValueError(f"no readable images found in {dataset}")
    skipped = getattr(ds, "skipped", [])
    if skipped:
        typer.echo(f"skipped {len(skipped)} unreadable image(s): "
                   + "; ".join(f"{s.path} ({s.reason})" for s in skipped[:5]), err=True)
    x = torch.stack([it["image"] for it in items])
    _check_input_size(model, x[:1], size)
    masks = torch.stack([it["mask"] for it in items]) if "mask" in items[0] else None
    keys = [str(it.get("key", i)) for i, it in enumerate(items)]
    labels = [int(it["label"]) for it in items] if "label" in items[0] else None
    typer.echo(f"quantifying {count} images of {name} at layer {layer} on {dev}")
    res = quantify(model, x, layer, grid=grid, settings=settings, seed=seed, device=dev,
                   max_batch=max_batch, image_keys=keys, show_progress=None)
    fg = mask_to_grid(masks, grid) if masks is not None else None
    out.mkdir(parents=True, exist_ok=True)
    save_result(res, out / "quantify.pt", labels=labels, foreground=fg)
    cells, per_image = result_tables(res, labels, fg, concept_threshold)
    write_csv(cells, out / "cells.csv")
    write_csv(per_image, out / "images.csv")
    write_json(out / "run.json", {
        "checkpoint": str(checkpoint), "arch": getattr(model, "kdexplain_arch", arch),
        "layer": res.layer, "dataset": dataset, "split": split, "n_images": count,
        "image_size": size, "settings": res.settings, "environment": environment_info(),
        **({"concept_threshold": concept_threshold} if fg is not None else {}),
    })
    if heatmaps:
        vmin, vmax = shared_scale(res.entropy[~res.no_signal])
        for b, name_b in enumerate(heatmap_names(keys)):
            plot_entropy_overlay(denormalize(x[b]), res.entropy[b], out / "heatmaps" / name_b,
                                 foreground=masks[b] if masks is not None else None,
                                 title=f"{keys[b]}  layer {res.layer}", vmin=vmin, vmax=vmax)
    if fg is not None:
        typer.echo(_concept_lines(per_image, concept_threshold))
    flagged = int(res.no_signal.sum())
    typer.echo(f"mean entropy {float(res.entropy[~res.no_signal].mean()):.3f} nats; "
               f"{flagged} image(s) without signal; wrote {out}")


def _check_input_size(model, x, size: int) -> None:
    """One forward of one image, so that a network that cannot take this input size (a
    ViT's fixed 224 x 224) is one clear error, not a traceback from inside the model."""
    import torch

    from kdexplain.cli import UserError

    try:
        with torch.no_grad():
            model(x)
    except (AssertionError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        arch = getattr(model, "kdexplain_arch", type(model).__name__)
        raise UserError(f"{arch} cannot take {size} x {size} images ({first}); quantify at "
                        "the input size the network was built for (--image-size, e.g. 224 "
                        "for torchvision's ImageNet models)") from None

def heatmap_names(keys: list[str]) -> list[str]:
    """File names of the heatmaps: each image's key (its relative path or dataset key) made
    a safe file name, numbered only where two would collide."""
    import re

    names: list[str] = []
    seen: set[str] = set()
    for i, key in enumerate(keys):
        stem = re.sub(r"\.(png|jpe?g|bmp|gif|tiff?|webp)$", "", str(key), flags=re.IGNORECASE)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
        name = f"{stem}.png" if stem not in seen else f"{stem}_{i:04d}.png"
        seen.add(stem)
        names.append(name)
    return names


def _concept_lines(per_image, threshold: float) -> str:
    """The printed concept summary: one line per image (at most 20) and the means."""
    rows = [f"concepts at b = {threshold:g} (H_bar pooled over these images): "
            "image, mean entropy foreground / background (nats), N_fg, N_bg"]
    for r in per_image.head(20).itertuples():
        rows.append(f"  {r.key}: {r.fg_entropy:.3f} / {r.bg_entropy:.3f}, {r.n_fg}, {r.n_bg}")
    if len(per_image) > 20:
        rows.append(f"  ... {len(per_image) - 20} more in images.csv")
    rows.append(f"  mean: {per_image.fg_entropy.mean():.3f} / {per_image.bg_entropy.mean():.3f}, "
                f"{per_image.n_fg.mean():.2f}, {per_image.n_bg.mean():.2f}")
    return "\n".join(rows)


def _check_quantify_options(*, n: int, grid: int, max_batch: int | None, out: Path,
                            preset: str = "default", settings: dict | None = None):
    """Refuse impossible values before any model is loaded or any image is read; return the
    :class:`~kdexplain.quantification.QuantifySettings` of the preset with the ``settings``
    the command line gave (``None``: the preset's)."""
    from kdexplain.quantification.settings import resolve_settings
    from kdexplain.utils import check_writable_folder

    for flag, value in (("--n-images", n), ("--grid", grid), ("--max-batch", max_batch)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    try:
        resolved = resolve_settings(preset, **(settings or {}))
    except ValueError as e:  # the settings' own message, with the flag's spelling
        raise ValueError(_as_flags(str(e), settings or {})) from None
    check_writable_folder(out, "output folder (--out)")
    return resolved


def _as_flags(message: str, settings: dict) -> str:
    """``steps must be ...`` -> ``--steps must be ...`` for the settings given as flags."""
    for key in settings:
        if message.startswith(key):
            return "--" + key.replace("_", "-") + message[len(key):]
    return message
