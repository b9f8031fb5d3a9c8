"""``ilsvrc``: ILSVRC / ImageNet images with Pascal-VOC-style XML boxes (no masks).

As in the paper, an image is cropped to 1.2x its object box and the foreground is either
the box region (``foreground="box"``, default) or, as the original code did for images
without masks, the central square of the grid (``foreground="center"``: cells 2..13 of 16
in both directions, at the output size).

Layouts (the official ``ILSVRC`` tree, e.g. the Kaggle "ImageNet Object Localization"
download, or the DET task; ``<task>`` is ``CLS-LOC`` or ``DET`` and may be absent)::

    root/[ILSVRC/]Annotations/<task>/<split>/**/<name>.xml
    root/[ILSVRC/]Data/<task>/<split>/**/<name>.JPEG     (same relative path; .jpg/.png too)
    root/LOC_synset_mapping.txt                          (optional) "<wnid> <names>"

Classes: the ``classes`` option (object names, e.g. WordNet ids) in that order, else the
order of ``LOC_synset_mapping.txt``, else the sorted object names found in the ``train``
annotations (and the split's own). One sample per image (its largest object of a known
class, ``objects="largest"``) or per object (``objects="all"``); images without such an
object are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from kdexplain.data.annotations import expect_file, parse_voc_xml
from kdexplain.data.base import ImageOptions, RawSample, RecordDataset, load_rgb
from kdexplain.data.grid import center_mask

ILSVRC_HOW = ("Download the ILSVRC images and bounding-box XML annotations from "
              "https://image-net.org/download (e.g. the 'ImageNet Object Localization "
              "Challenge' archive) and extract them into the root; torchvision cannot "
              "download ImageNet.")
IMAGE_SUFFIXES = (".JPEG", ".jpg", ".jpeg", ".png")
FOREGROUND_RULES = ("box", "center")
OBJECT_RULES = ("largest", "all")


class _Item(NamedTuple):
    image: Path
    label: int
    box: tuple[float, float, float, float]
    key: str


def resolve_ilsvrc_root(root: str | Path, task: str | None = None) -> tuple[Path, str]:
    """(the folder holding ``Annotations`` and ``Data``, the task sub-folder or "")."""
    root = Path(root)
    base = root / "ILSVRC" if (root / "ILSVRC" / "Annotations").is_dir() else root
    expect_file(base / "Annotations", "the ILSVRC annotation folder", ILSVRC_HOW)
    if task is None:
        task = next((t for t in ("CLS-LOC", "DET") if (base / "Annotations" / t).is_dir()), "")
    return base, task


def _synset_mapping(root: Path, base: Path) -> list[tuple[str, str]] | None:
    for cand in (root / "LOC_synset_mapping.txt", base / "LOC_synset_mapping.txt",
                 base.parent / "LOC_synset_mapping.txt"):
        if cand.is_file():
            out = []
            for line in cand.read_text(encoding="utf-8").splitlines():
                parts = line.strip().split(maxsplit=1)
                if parts:
                    out.append((parts[0], parts[1].split(",")[0].strip() if len(parts) > 1
                                else parts[0]))
            return out
    return None


class ILSVRCDataset(RecordDataset):
    """ILSVRC images cropped around their object box, with a box or central foreground.

    Parameters
    ----------
    split : {"train", "val"}
    root : path
        The folder holding ``ILSVRC/`` (or ``Annotations/`` and ``Data/`` directly).
    image_size : int
        Side of the square output (the paper: 224).
    task : str or None
        ``"CLS-LOC"``, ``"DET"`` or ``""`` (no task level); None = detect.
    classes : sequence of str or None
        Object names to keep, in label order (see the module docstring for the default).
    objects : {"largest", "all"}
        One sample per image (its largest object) or one per object.
    foreground : {"box", "center"}
        The box region, or the paper's central square of the grid.
    grid, center_cells
        The grid of ``foreground="center"`` and its first and last foreground cell
        (default 16 and (2, 13): the original's rows/cols 2-13).
    one_based : bool
        The XML boxes are 1-based (Pascal VOC) rather than 0-based (ILSVRC, default).
    image : ImageOptions or mapping, optional
        The image options (crop, aspect, augmentation, normalisation, file checks; see
        :class:`~kdexplain.data.base.ImageOptions`), over :attr:`image_defaults` (``crop_scale``: a multiple of the object box,
        1.2 by default as the paper; None = whole image).
    """

    name = "ilsvrc"
    image_defaults = ImageOptions(crop_scale=1.2)

    def __init__(self, split: str = "train", root: str | Path | None = None,
                 image_size: int = 224, *, task: str | None = None,
                 classes: Sequence[str] | None = None, objects: str = "largest",
                 foreground: str = "box", grid: int = 16,
                 center_cells: tuple[int, int] = (2, 13), one_based: bool = False,
                 image: ImageOptions | Mapping[str, Any] | None = None):
        super().__init__(image_size, image)
        if root is None:
            raise ValueError("ilsvrc needs root=<folder holding ILSVRC/Annotations>. "
                             + ILSVRC_HOW)
        if split not in ("train", "val"):
            raise ValueError(f"ilsvrc has the annotated splits train and val, not {split!r}")
        if foreground not in FOREGROUND_RULES:
            raise ValueError(f"foreground must be one of {', '.join(FOREGROUND_RULES)}, "
                             f"got {foreground!r}")
        if objects not in OBJECT_RULES:
            raise ValueError(f"objects must be one of {', '.join(OBJECT_RULES)}, got {objects!r}")
        self.foreground = foreground
        self.grid = int(grid)
        self.center_cells = (int(center_cells[0]), int(center_cells[1]))
        center_mask(self.image_size, self.image_size, self.grid, *self.center_cells)  # validate
        base, task = resolve_ilsvrc_root(root, task)
        ann_dir = expect_file(base / "Annotations" / task / split,
                              f"the ILSVRC {split} annotation folder", ILSVRC_HOW)
        data_dir = expect_file(base / "Data" / task / split, f"the ILSVRC {split} image folder",
                               ILSVRC_HOW)
        xmls = sorted(ann_dir.rglob("*.xml"))
        if not xmls:
            raise FileNotFoundError(f"expected XML annotations under {ann_dir}, found none. "
                                    + ILSVRC_HOW)
        anns = {x: parse_voc_xml(x, one_based=one_based) for x in xmls}
        mapping = _synset_mapping(Path(root), base)
        if classes:
            wnids = list(classes)
            names = dict(mapping) if mapping else {}
            self.class_names = [names.get(w, w) for w in wnids]
        elif mapping:
            wnids = [w for w, _ in mapping]
            self.class_names = [n for _, n in mapping]
        else:
            found = {o.name for a in anns.values() for o in a.objects}
            train_dir = base / "Annotations" / task / "train"
            if split != "train" and train_dir.is_dir():
                found |= {o.name for x in sorted(train_dir.rglob("*.xml"))
                          for o in parse_voc_xml(x, one_based=one_based).objects}
            wnids = sorted(found)
            self.class_names = list(wnids)
        self.wnids = wnids
        label_of = {w: i for i, w in enumerate(wnids)}
        items: list[_Item] = []
        for xml, ann in anns.items():
            rel = xml.relative_to(ann_dir).with_suffix("")
            known = [o for o in ann.objects if o.name in label_of]
            if not known:
                continue
            image = next((data_dir / rel.with_suffix(s) for s in IMAGE_SUFFIXES
                          if (data_dir / rel.with_suffix(s)).is_file()), None)
            if image is None:
                self._skip(data_dir / rel.with_suffix(".JPEG"),
                           f"no image file for the annotation {xml}")
                continue
            if objects == "largest":
                known = [max(known, key=lambda o: (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))]
            for k, obj in enumerate(known):
                key = f"ilsvrc/{split}/{rel.as_posix()}" + (f"/{k}" if objects == "all" else "")
                items.append(_Item(image, label_of[obj.name], obj.box, key))
        self._records = self._verified(items, lambda r: (r.image,))
        self.split = split

    def raw_sample(self, index: int) -> RawSample:
        r = self._records[index]
        image = load_rgb(r.image)
        h, w = image.shape[-2:]
        mask = torch.zeros(h, w, dtype=torch.bool)
        x0, y0, x1, y1 = (round(v) for v in r.box)
        mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
        return RawSample(image, mask, torch.tensor(r.box, dtype=torch.float32), r.label, r.key)

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.foreground == "center":
            s = self.image_size
            item["mask"] = center_mask(s, s, self.grid, *self.center_cells)
        return item
