"""``build_dataset``: one entry point for every dataset of this room."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from kdexplain.data.base import IMAGE_OPTION_NAMES
from kdexplain.utils.options import check_options

# name -> "module:Class" (imported on first use, so that e.g. scenes does not pay for VOC)
_BUILTIN: dict[str, str] = {
    "scenes": "kdexplain.data.scenes:ScenesDataset",
    "cub": "kdexplain.data.cub:CUBDataset",
    "voc": "kdexplain.data.voc:VOCObjectsDataset",
    "pets": "kdexplain.data.pets:PetsDataset",
    "ilsvrc": "kdexplain.data.ilsvrc:ILSVRCDataset",
    "folder": "kdexplain.data.folder:FolderDataset",
}
_EXTRA: dict[str, Callable[..., Dataset]] = {}
_OPTIONS_KEY = "dataset options (data.options in a config, -o on the command line)"


def register_dataset(name: str, factory: Callable[..., Dataset]) -> None:
    """Make ``build_dataset(name, split=..., root=..., image_size=..., **options)`` call
    ``factory(split=split, root=root, image_size=image_size, **options)``."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in dataset name and cannot be replaced")
    _EXTRA[name] = factory


def dataset_names() -> list[str]:
    """Names ``build_dataset`` accepts."""
    return [*_BUILTIN, *_EXTRA]


def build_dataset(name: str = "scenes", split: str = "train", root: str | Path | None = None,
                  image_size: int = 64, **options) -> Dataset:
    """Build a dataset of images with foreground masks.

    Parameters
    ----------
    name : str
        ``"scenes"`` (built-in, offline, the default), ``"cub"`` (CUB-200-2011), ``"voc"``
        (Pascal VOC 2012 object crops), ``"pets"`` (Oxford-IIIT Pet), ``"ilsvrc"``
        (ILSVRC / ImageNet images with VOC-style XML boxes) or ``"folder"`` (every image
        under ``root``). A path to an existing folder is taken as ``"folder"`` with that root.
    split : str
        ``"train"``, ``"val"`` or ``"test"`` where the dataset has them (see docs/data.md).
    root : path or None
        The dataset's local root folder; for ``scenes`` the cache root
        (None = ``$KDEXPLAIN_DATA_ROOT`` or ``./data/cache``). Required by the others.
    image_size : int
        Side of the square output images (pixels).
    **options
        Dataset-specific options (see each class), plus the image options every built-in
        dataset shares (:class:`~kdexplain.data.base.ImageOptions`: ``crop_scale``,
        ``keep_aspect``, ``augment``, ``transform``, ``normalize``, ``verify``), given as
        plain keys as in a config's ``data.options``.

    Returns
    -------
    torch Dataset
        ``ds[i]`` is a dict ``image`` FloatTensor (3, S, S), ``label`` int, ``mask``
        BoolTensor (S, S), ``box`` FloatTensor (4,) x0, y0, x1, y1, ``index`` int,
        ``key`` str; attributes ``num_classes``, ``class_names``, ``image_size``, ``skipped``.
    """
    if name in _EXTRA:
        check_options(_EXTRA[name], options, f"dataset {name!r}", _OPTIONS_KEY,
                      reserved=("split", "root", "image_size"))
        return _EXTRA[name](split=split, root=root, image_size=image_size, **options)
    if name not in _BUILTIN:
        if Path(name).is_dir():
            name, root = "folder", Path(name)
        else:
            raise ValueError(f"unknown dataset {name!r}; choose one of "
                             f"{', '.join(dataset_names())}, or give the path of a folder "
                             f"of images")
    module, cls = _BUILTIN[name].split(":")
    factory = getattr(importlib.import_module(module), cls)
    if name != "scenes" and root is None:
        raise ValueError(f"the {name!r} dataset needs root=<folder of the data on your disk> "
                         f"(see docs/data.md for the expected layout)")
    own = {k: v for k, v in options.items() if k not in IMAGE_OPTION_NAMES}
    check_options(factory, own, f"dataset {name!r}", _OPTIONS_KEY,
                  reserved=("split", "root", "image_size", "image"), extra=IMAGE_OPTION_NAMES)
    image = {k: v for k, v in options.items() if k in IMAGE_OPTION_NAMES}
    return factory(split=split, root=root, image_size=image_size, image=image, **own)
