"""``folder``: every image file under a folder, with optional masks in a parallel folder.

Images are found recursively (extensions in ``IMAGE_EXTENSIONS``, any case) and sorted
by relative path. The label is the index of the image's first-level sub-folder among
the sorted sub-folder names (``root/<class>/.../x.jpg``); images directly in ``root``
get label -1 (unlabelled).

Masks (optional): ``mask_dir/<same relative path>.png``. Palette PNGs: index > 0 and
!= 255 is foreground (VOC style); other PNGs: value >= ``mask_threshold`` of white (0/1,
0/255 and soft grey masks all work). Without ``mask_dir`` the items carry no ``mask`` and
no ``box`` unless ``foreground`` says what to use: ``"center"`` (the paper's central
square of the grid) or ``"full"`` (the whole image).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from kdexplain.data.base import (
    IMAGE_EXTENSIONS,
    ImageOptions,
    RawSample,
    RecordDataset,
    check_mask_shape,
    load_rgb,
    read_label_image,
)
from kdexplain.data.grid import center_mask
from kdexplain.data.transforms import mask_box

FOLDER_FOREGROUND = ("none", "center", "full")


def list_images(root: Path) -> list[Path]:
    """Image files under ``root``, recursively, sorted by relative POSIX path."""
    found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_mask_file(path: Path, threshold: float = 0.5) -> np.ndarray:
    """A foreground mask from a PNG, bool (H, W); see the module docstring for the rule."""
    arr, palette = read_label_image(path)
    if palette:
        return (arr > 0) & (arr != 255)
    arr = arr.astype(np.float32)
    if arr.max() <= 1.0:
        return arr >= threshold
    top = 255.0 if arr.max() <= 255 else 65535.0
    return arr >= threshold * top


class _Record(NamedTuple):
    image: Path
    mask: Path | None
    label: int  # -1: unlabelled (the image is not in a class folder)
    key: str


class FolderDataset(RecordDataset):
    """All images under a folder (``kdexplain quantify --dataset DIR [--mask-dir MASKS]``).

    Parameters
    ----------
    split : ignored
        Accepted for a uniform interface; the folder is one set of images.
    root : path
        The folder of images.
    image_size : int
    mask_dir : path or None
        Parallel folder of PNG masks (same relative paths, ``.png``).
    mask_threshold : float
        Share of white that counts as foreground in grey masks.
    foreground : {"none", "center", "full"}
        Foreground of images without ``mask_dir``; ``"none"`` leaves ``mask`` and ``box``
        out of the items.
    grid, center_cells
        The grid of ``foreground="center"`` (default 16, cells 2..13).
    image : ImageOptions or mapping, optional
        The image options (crop, aspect, augmentation, normalisation, file checks; see
        :class:`~kdexplain.data.base.ImageOptions`), over :attr:`image_defaults` (``crop_scale`` only with masks: a multiple of the
        mask's box; ``keep_aspect`` True by default: resize the shorter side to ``image_size``
        and crop the central square, torchvision's ``Resize`` + ``CenterCrop``).
    """

    name = "folder"
    image_defaults = ImageOptions(keep_aspect=True)

    def __init__(self, split: str | None = None, root: str | Path | None = None,
                 image_size: int = 224, *, mask_dir: str | Path | None = None,
                 mask_threshold: float = 0.5, foreground: str = "none", grid: int = 16,
                 center_cells: tuple[int, int] = (2, 13), image: ImageOptions | Mapping[str, Any] | None = None):
        super().__init__(image_size, image)
        if root is None:
            raise ValueError("folder needs root=<a folder of images>")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"expected a folder of images at {root}, which does not "
                                    f"exist or is not a folder")
        if foreground not in FOLDER_FOREGROUND:
            raise ValueError(f"foreground must be one of {', '.join(FOLDER_FOREGROUND)}, "
                             f"got {foreground!r}")
        if mask_dir is None and self.image.crop_scale is not None:
            raise ValueError("crop_scale needs masks (mask_dir) to know the object's box")
        self.root = root
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        self.mask_threshold = mask_threshold
        self.foreground = foreground
        self.grid, self.center_cells = int(grid), (int(center_cells[0]), int(center_cells[1]))
        if foreground == "center":
            center_mask(self.image_size, self.image_size, self.grid, *self.center_cells)
        images = list_images(root)
        if not images:
            raise FileNotFoundError(f"expected image files ({', '.join(IMAGE_EXTENSIONS)}) "
                                    f"under {root}, found none")
        rels = [p.relative_to(root) for p in images]
        self.class_names = sorted({r.parts[0] for r in rels if len(r.parts) > 1})
        label_of = {c: i for i, c in enumerate(self.class_names)}
        records = []
        for p, r in zip(images, rels, strict=True):
            mask = self.mask_dir / r.with_suffix(".png") if self.mask_dir is not None else None
            records.append(_Record(p, mask, label_of[r.parts[0]] if len(r.parts) > 1 else -1,
                                   r.as_posix()))
        if self.mask_dir is not None:
            if not self.mask_dir.is_dir():
                raise FileNotFoundError(f"expected the mask folder {self.mask_dir}, which does "
                                        f"not exist")
            missing = [m for _, m, _, _ in records if not m.is_file()]
            if missing:
                raise FileNotFoundError(
                    f"expected the mask {missing[0]} for the image "
                    f"{root / Path(missing[0]).relative_to(self.mask_dir).with_suffix('')}.*"
                    f" ({len(missing)} of {len(records)} masks are missing); masks are PNGs "
                    f"at the image's relative path under {self.mask_dir}")
        self._records = self._verified(records, lambda r: (r.image,) if r.mask is None
                                       else (r.image, r.mask))

    @property
    def has_masks(self) -> bool:
        """Whether items carry ``mask`` and ``box``."""
        return self.mask_dir is not None or self.foreground != "none"

    def raw_sample(self, index: int) -> RawSample:
        path, mask_path, label, key = self._records[index]
        image = load_rgb(path)
        if mask_path is not None:
            mask = read_mask_file(mask_path, self.mask_threshold)
            check_mask_shape(mask, image, mask_path, path)
            mask = torch.from_numpy(np.ascontiguousarray(mask))
        else:
            mask = torch.ones(image.shape[-2:], dtype=torch.bool)
        return RawSample(image, mask, None, label, key)

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.mask_dir is None:
            if self.foreground == "none":
                del item["mask"], item["box"]
            elif self.foreground == "center":
                s = self.image_size
                item["mask"] = center_mask(s, s, self.grid, *self.center_cells)
                item["box"] = mask_box(item["mask"])
        return item
