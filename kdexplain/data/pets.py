"""``pets``: Oxford-IIIT Pet with its trimaps as foreground masks.

Trimap values: 1 = pet, 2 = background, 3 = border (the uncertain outline of the pet).
``border="fg"`` (default) counts the border as foreground, ``"bg"`` as background;
``"ignore"`` is accepted as a synonym of ``"bg"`` (a boolean mask has no "ignore" value,
and an ignored pixel is not foreground).
The object box is the mask's bounding box.

Layout (``torchvision.datasets.OxfordIIITPet``, ``download=False``)::

    root/oxford-iiit-pet/images/<id>.jpg
    root/oxford-iiit-pet/annotations/{trainval,test}.txt   "<id> <class 1..37> <species> <breed>"
    root/oxford-iiit-pet/annotations/trimaps/<id>.png

Splits: ``trainval`` and ``test`` are the official lists; ``val`` is a stratified,
deterministic ``val_fraction`` of ``trainval`` and ``train`` the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from kdexplain.data.annotations import expect_file, select_split
from kdexplain.data.base import (
    ImageOptions,
    RawSample,
    RecordDataset,
    check_mask_shape,
    load_label_png,
    load_rgb,
)

PETS_HOW = ("Download images.tar.gz and annotations.tar.gz from "
            "https://www.robots.ox.ac.uk/~vgg/data/pets/ and extract both into "
            "<root>/oxford-iiit-pet (when online, torchvision.datasets.OxfordIIITPet(root, "
            "download=True) does this).")
BORDER_RULES = ("fg", "bg", "ignore")


def resolve_pets_root(root: str | Path) -> tuple[Path, Path]:
    """(torchvision root, ``.../oxford-iiit-pet``), accepting either level."""
    root = Path(root)
    if root.name == "oxford-iiit-pet":
        return root.parent, root
    return root, root / "oxford-iiit-pet"


def _breed(image_id: str) -> str:
    return " ".join(part.title() for part in image_id.rsplit("_", 1)[0].split("_"))


class _Row(NamedTuple):
    image: Path
    trimap: Path
    label: int  # 0..36


def _read_list(base: Path, official: str) -> list[_Row]:
    """(image, trimap, label 0..36) of ``annotations/<official>.txt``, as torchvision's
    ``OxfordIIITPet`` reads it (``<id> <class 1..37> <species> <breed>`` per line)."""
    path = base / "annotations" / f"{official}.txt"
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"malformed {path} line {n}: {line!r}; expected "
                             f"'<id> <class 1..37> <species> <breed>'. {PETS_HOW}")
        rows.append(_Row(base / "images" / f"{parts[0]}.jpg",
                         base / "annotations" / "trimaps" / f"{parts[0]}.png",
                         int(parts[1]) - 1))
    return rows


class PetsDataset(RecordDataset):
    """Oxford-IIIT Pet images with trimap foreground masks.

    Parameters
    ----------
    split : {"train", "val", "trainval", "test"}
    root : path
        The folder holding ``oxford-iiit-pet`` (or that folder itself).
    image_size : int
    border : {"fg", "bg", "ignore"}
        What the trimap's border (value 3) counts as ("ignore" = background).
    val_fraction : float
        Share of each class of ``trainval`` held out as ``val`` (default 0.1).
    split_seed : int
        Seed of the validation hold-out.
    image : ImageOptions or mapping, optional
        The image options (crop, aspect, augmentation, normalisation, file checks; see
        :class:`~kdexplain.data.base.ImageOptions`), over :attr:`image_defaults` (``crop_scale``: a multiple of the pet's box;
        None, the default, = whole image).
    """

    name = "pets"

    def __init__(self, split: str = "train", root: str | Path | None = None,
                 image_size: int = 224, *, border: str = "fg", val_fraction: float = 0.1,
                 split_seed: int = 0, image: ImageOptions | Mapping[str, Any] | None = None):
        super().__init__(image_size, image)
        if root is None:
            raise ValueError("pets needs root=<folder holding oxford-iiit-pet>. " + PETS_HOW)
        if border not in BORDER_RULES:
            raise ValueError(f"border must be one of {', '.join(BORDER_RULES)}, got {border!r}")
        if split not in ("train", "val", "trainval", "test"):
            raise ValueError(f"pets has the splits train, val, trainval and test, not {split!r}")
        self.border = border
        _, base = resolve_pets_root(root)
        for rel in ("images", "annotations/trimaps", "annotations/trainval.txt",
                    "annotations/test.txt"):
            expect_file(base / rel, "the Oxford-IIIT Pet file", PETS_HOW)
        lists = {official: _read_list(base, official) for official in ("trainval", "test")}
        names: dict[int, str] = {}
        for rows in lists.values():
            for img, _, lab in rows:
                names.setdefault(lab, _breed(img.stem))
        n_cls = max(names) + 1 if names else 0
        self.class_names = [names.get(k, f"class_{k}") for k in range(n_cls)]
        rows = lists["trainval"] + lists["test"]
        keep = select_split(split, [r.image.stem for r in rows], [r.label for r in rows],
                            [i < len(lists["trainval"]) for i in range(len(rows))],
                            val_fraction, split_seed, "pets")
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        self._records = self._verified(rows, lambda r: (r.image, r.trimap))
        self.split = split

    def raw_sample(self, index: int) -> RawSample:
        img_path, seg_path, label = self._records[index]
        image = load_rgb(img_path)
        trimap = load_label_png(seg_path)
        mask = (trimap == 1) | (trimap == 3) if self.border == "fg" else trimap == 1
        check_mask_shape(mask, image, seg_path, img_path)
        return RawSample(image, torch.from_numpy(np.ascontiguousarray(mask)), None, label,
                         f"pets/{img_path.stem}")
