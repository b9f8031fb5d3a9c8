"""``kdexplain data build|info|preview``: build the scenes cache, summarise, draw a preview."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

data_app = typer.Typer(help="Datasets with foreground masks: build, summarise, preview.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")


def _parse_options(pairs: list[str] | None) -> dict:
    """``key=value`` pairs (YAML values: 12, 0.5, true, [a, b]) to keyword arguments."""
    from kdexplain.config import ConfigError, read_yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option expects key=value (e.g. -o border=bg), got {pair!r}")
        try:
            out[key.strip().replace("-", "_")] = read_yaml(value, f"--option {pair!r}")
        except ConfigError as e:
            raise ValueError(f"cannot read the value of --option {pair!r}: {e}") from None
    return out


def _open(name: str, root: Optional[Path], split: str, image_size: Optional[int],
          options: list[str] | None):
    from kdexplain.data import build_dataset

    kwargs = _parse_options(options)
    size = image_size or (64 if name == "scenes" else 224)
    try:
        return build_dataset(name, split=split, root=root, image_size=size, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        raise ValueError(f"{e}; the options of {name!r}: `kdexplain docs data`") from e


_NAME = typer.Argument(metavar="[NAME]",
                       help="scenes, cub, voc, pets, ilsvrc, folder, or a folder of images "
                            "[default: scenes].", show_default=False)
_ROOT = typer.Option("--data-root", help="Root folder of a real dataset (scenes: the cache "
                                         "root).")
_SPLIT = typer.Option("--split", help="train, val or test (trainval where the dataset has it).")
_SIZE = typer.Option("--image-size", help="Output size in pixels (default 64 for scenes, "
                                          "224 otherwise).")
_OPTS = typer.Option("--option", "-o", metavar="KEY=VALUE", help="A dataset option key=value (repeatable), e.g. "
                                            "-o images_per_class=20 -o border=bg.")


@data_app.command("build")
def build_command(
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 64,
    images_per_class: Annotated[int, typer.Option(help="Training images per class.")] = 100,
    val_per_class: Annotated[Optional[int], typer.Option(
        help="Validation images per class (default: images-per-class // 5).")] = None,
    test_per_class: Annotated[Optional[int], typer.Option(
        help="Test images per class (default: images-per-class // 5).")] = None,
    seed: Annotated[int, typer.Option(help="Generation seed.")] = 0,
    spurious_background: Annotated[float, typer.Option(
        help="Probability that an image's background photo is tied to its class.")] = 0.0,
    classes: Annotated[Optional[str], typer.Option(
        help="Comma-separated subset of the animal classes (default: all ten).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        help="Folder of the cache files (default: $KDEXPLAIN_DATA_ROOT/scenes or "
             "./data/cache/scenes).")] = None,
    rebuild: Annotated[bool, typer.Option(help="Regenerate even if the cache exists.")] = False,
) -> None:
    """Build the cache of the built-in 'scenes' dataset (train, val and test splits)."""
    from kdexplain.data import build_scenes

    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    report = build_scenes(image_size=image_size, images_per_class=images_per_class,
                          val_per_class=val_per_class, test_per_class=test_per_class, seed=seed,
                          spurious_background=spurious_background, classes=names,
                          cache_dir=cache_dir, rebuild=rebuild, show_progress=None)
    for r in report:
        state = f"built in {r['seconds']:.1f} s" if r["built"] else "cached"
        typer.echo(f"{r['split']:<5} {r['images']:>6} images  {state:<16} {r['path']}")


@data_app.command("info")
def info_command(
    name: Annotated[str, _NAME] = "scenes",
    data_root: Annotated[Optional[Path], _ROOT] = None,
    split: Annotated[str, _SPLIT] = "val",
    image_size: Annotated[Optional[int], _SIZE] = None,
    option: Annotated[Optional[list[str]], _OPTS] = None,
    limit: Annotated[int, typer.Option(
        help="Read at most this many images (spread evenly) for the foreground shares; "
             "0 = all.")] = 1000,
    grid: Annotated[int, typer.Option(help="Grid of the cell-level foreground share.")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarise a dataset: images per class, foreground share, unreadable files."""
    from kdexplain.data.preview import dataset_summary, format_summary

    ds = _open(name, data_root, split, image_size, option)
    summary = dataset_summary(ds, limit=limit or None, grid=grid)
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@data_app.command("preview")
def preview_command(
    name: Annotated[str, _NAME] = "scenes",
    out: Annotated[Path, typer.Option(help="The PNG to write.")] = Path("preview.png"),
    data_root: Annotated[Optional[Path], _ROOT] = None,
    split: Annotated[str, _SPLIT] = "val",
    image_size: Annotated[Optional[int], _SIZE] = None,
    option: Annotated[Optional[list[str]], _OPTS] = None,
    n_images: Annotated[int, typer.Option(help="Number of images.")] = 16,
    start: Annotated[int, typer.Option(help="Index of the first image.")] = 0,
    grid: Annotated[int, typer.Option(help="Cells per side of the grid drawn (0: none).")] = 16,
) -> None:
    """Draw images with their mask outline, foreground grid cells and box to a PNG."""
    from kdexplain.data.preview import draw_preview

    ds = _open(name, data_root, split, image_size, option)
    path = draw_preview(ds, out, n=n_images, grid=grid, start=start)
    typer.echo(f"wrote {path} ({min(n_images, len(ds) - start)} images of {len(ds)})")
