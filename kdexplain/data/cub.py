"""``cub``: CUB-200-2011 birds with the segmentation masks of its separate archive.

Layout (CUB is not in torchvision; the files of ``CUB_200_2011.tgz`` and
``segmentations.tgz``)::

    root/CUB_200_2011/images/<NNN.Class>/<file>.jpg
    root/CUB_200_2011/images.txt              "<id> <NNN.Class>/<file>.jpg"
    root/CUB_200_2011/image_class_labels.txt  "<id> <class 1..200>"
    root/CUB_200_2011/train_test_split.txt    "<id> <1 = train | 0 = test>"
    root/CUB_200_2011/bounding_boxes.txt      "<id> <x> <y> <width> <height>"
    root/CUB_200_2011/classes.txt             "<class> <NNN.Class>"
    root/segmentations/<NNN.Class>/<file>.png  soft grey masks (also found inside CUB_200_2011/)

The masks are soft (annotators' agreement); foreground = value >= ``mask_threshold``
(0.5 of white). ``masks="box"`` uses the bounding box as foreground instead, for users
without the segmentations archive. ``crop_scale`` crops to a multiple of the box first
(1.0 = tight box; None = whole image, the default).

Splits: ``trainval`` and ``test`` are the official lists; ``val`` is a stratified,
deterministic ``val_fraction`` of ``trainval`` and ``train`` the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from kdexplain.data.annotations import expect_file, read_table, select_split
from kdexplain.data.base import (
    ImageOptions,
    RawSample,
    RecordDataset,
    check_mask_shape,
    load_label_png,
    load_rgb,
)

CUB_HOW = ("Download CUB_200_2011.tgz (and segmentations.tgz for the masks) from "
           "https://www.vision.caltech.edu/datasets/cub_200_2011/ and extract them into the "
           "root (CUB is not in torchvision, so nothing downloads it automatically).")
MASK_SOURCES = ("segmentation", "box")


class _Row(NamedTuple):
    image: Path
    mask: Path | None
    label: int
    box: tuple[float, float, float, float]
    key: str


def resolve_cub_root(root: str | Path) -> Path:
    """The ``CUB_200_2011`` folder, given it or its parent."""
    root = Path(root)
    return root if root.name == "CUB_200_2011" or (root / "images.txt").is_file() \
        else root / "CUB_200_2011"


def find_segmentations(base: Path) -> Path | None:
    """The ``segmentations`` folder next to or inside ``CUB_200_2011``, or None."""
    for cand in (base.parent / "segmentations", base / "segmentations"):
        if cand.is_dir():
            return cand
    return None


class CUBDataset(RecordDataset):
    """CUB-200-2011 with foreground masks.

    Parameters
    ----------
    split : {"train", "val", "trainval", "test"}
    root : path
        The folder holding ``CUB_200_2011`` (and ``segmentations``), or ``CUB_200_2011``.
    image_size : int
    masks : {"segmentation", "box"}
        Foreground from the segmentations archive (default) or the bounding box.
    mask_threshold : float
        Foreground = mask value >= this share of white (default 0.5).
    val_fraction, split_seed
        The validation hold-out of the official training list.
    image : ImageOptions or mapping, optional
        The image options (crop, aspect, augmentation, normalisation, file checks; see
        :class:`~kdexplain.data.base.ImageOptions`), over :attr:`image_defaults` (``crop_scale``: a multiple of the bird's box,
        1.0 = tight; None, the default, = whole image).
    """

    name = "cub"

    def __init__(self, split: str = "train", root: str | Path | None = None,
                 image_size: int = 224, *, masks: str = "segmentation",
                 mask_threshold: float = 0.5, val_fraction: float = 0.1, split_seed: int = 0,
                 image: ImageOptions | Mapping[str, Any] | None = None):
        super().__init__(image_size, image)
        if root is None:
            raise ValueError("cub needs root=<folder holding CUB_200_2011>. " + CUB_HOW)
        if masks not in MASK_SOURCES:
            raise ValueError(f"masks must be one of {', '.join(MASK_SOURCES)}, got {masks!r}")
        if not 0.0 < mask_threshold <= 1.0:
            raise ValueError(f"mask_threshold is a share of white in (0, 1], got {mask_threshold}")
        self.mask_threshold = mask_threshold
        base = resolve_cub_root(root)
        expect_file(base / "images", "the CUB image folder", CUB_HOW)
        paths = {rel: read_table(base / rel, n, CUB_HOW) for rel, n in
                 (("images.txt", 2), ("image_class_labels.txt", 2),
                  ("train_test_split.txt", 2), ("bounding_boxes.txt", 5), ("classes.txt", 2))}
        seg_dir = None
        if masks == "segmentation":
            seg_dir = find_segmentations(base)
            if seg_dir is None:
                raise FileNotFoundError(
                    f"expected the CUB segmentation folder {base.parent / 'segmentations'} "
                    f"(or {base / 'segmentations'}), which does not exist. Extract "
                    f"segmentations.tgz from https://www.vision.caltech.edu/datasets/"
                    f"cub_200_2011/ there, or pass masks='box' to use the bounding boxes.")

        def by_id(rel: str) -> dict[str, list[str]]:
            return {row[0]: row[1:] for row in paths[rel]}

        labels, is_train, boxes = (by_id("image_class_labels.txt"),
                                   by_id("train_test_split.txt"), by_id("bounding_boxes.txt"))
        self.class_names = [row[1].split(".", 1)[-1] for row in paths["classes.txt"]]
        rows: list[_Row] = []
        train_flags: list[bool] = []
        for image_id, rel in paths["images.txt"]:
            for table, name in ((labels, "image_class_labels.txt"),
                                (is_train, "train_test_split.txt"),
                                (boxes, "bounding_boxes.txt")):
                if image_id not in table:
                    raise ValueError(f"image id {image_id} of {base / 'images.txt'} is missing "
                                     f"from {base / name}. {CUB_HOW}")
            try:
                label = int(labels[image_id][0]) - 1
                x, y, w, h = (float(v) for v in boxes[image_id])
                train = int(is_train[image_id][0]) == 1
            except ValueError as e:
                raise ValueError(f"malformed annotation of image id {image_id} in {base}: "
                                 f"{e}. {CUB_HOW}") from e
            if not 0 <= label < len(self.class_names):
                raise ValueError(f"image id {image_id} has class {label + 1}, but "
                                 f"{base / 'classes.txt'} lists {len(self.class_names)} classes")
            rel = rel.strip()
            mask = seg_dir / Path(rel).with_suffix(".png") if seg_dir is not None else None
            rows.append(_Row(base / "images" / rel, mask, label, (x, y, x + w, y + h),
                             f"cub/{Path(rel).with_suffix('').as_posix()}"))
            train_flags.append(train)
        keep = select_split(split, [r.key for r in rows], [r.label for r in rows], train_flags,
                            val_fraction, split_seed, "cub")
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        self._records = self._verified(rows, lambda r: (r.image,) if r.mask is None
                                    else (r.image, r.mask))
        self.split = split

    def raw_sample(self, index: int) -> RawSample:
        r = self._records[index]
        image = load_rgb(r.image)
        box = torch.tensor(r.box, dtype=torch.float32)
        if r.mask is None:
            h, w = image.shape[-2:]
            mask = np.zeros((h, w), dtype=bool)
            x0, y0, x1, y1 = (round(v) for v in r.box)
            mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
        else:
            grey = load_label_png(r.mask).astype(np.float32)
            scale = 255.0 if grey.max() > 1 else 1.0
            mask = grey >= self.mask_threshold * scale
            check_mask_shape(mask, image, r.mask, r.image)
        return RawSample(image, torch.from_numpy(np.ascontiguousarray(mask)), box, r.label,
                         r.key)
