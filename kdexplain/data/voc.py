"""``voc``: Pascal VOC 2012 object crops with their segmentation masks (the paper's VOC data).

One sample per annotated object of the images of the segmentation split
(``ImageSets/Segmentation/<split>.txt``): the image cropped to 1.2x the object's box (as
the paper did; padded with the mean colour where the crop leaves the image, the mask
padded with background), the object's mask as foreground. The mask is the object's
instance in ``SegmentationObject`` when that folder exists (instance k = the k-th object
of the XML, checked against the class map), else the pixels of the object's class in
``SegmentationClass``. Void pixels (255, object borders) count as background.

Layout (``torchvision.datasets.VOCSegmentation``, ``download=False``)::

    root/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    root/VOCdevkit/VOC2012/SegmentationClass/<id>.png      palette: 0 bg, 1-20 classes, 255 void
    root/VOCdevkit/VOC2012/SegmentationObject/<id>.png     (optional) instance ids
    root/VOCdevkit/VOC2012/Annotations/<id>.xml
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from kdexplain.data.annotations import expect_file, parse_voc_xml
from kdexplain.data.base import (
    ImageOptions,
    RawSample,
    RecordDataset,
    check_mask_shape,
    load_label_png,
    load_rgb,
)

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC_HOW = ("Download VOCtrainval_11-May-2012.tar from "
           "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ and extract it into the root "
           "(when online, torchvision.datasets.VOCSegmentation(root, year='2012', "
           "download=True) does both).")


class _Obj(NamedTuple):
    image: Path
    class_png: Path
    object_png: Path | None
    instance: int  # 1-based instance id in SegmentationObject
    label: int
    box: tuple[float, float, float, float]
    key: str


def resolve_voc_root(root: str | Path, year: str = "2012") -> tuple[Path, Path]:
    """(torchvision root, ``.../VOCdevkit/VOC<year>``), accepting any of the three levels."""
    root = Path(root)
    name = f"VOC{year}"
    if root.name == name and root.parent.name == "VOCdevkit":
        return root.parent.parent, root
    if root.name == "VOCdevkit":
        return root.parent, root / name
    return root, root / "VOCdevkit" / name


class VOCObjectsDataset(RecordDataset):
    """Pascal VOC object crops with foreground masks.

    Parameters
    ----------
    split : {"train", "val", "trainval"}
        The segmentation split (VOC 2012 has no public test masks).
    root : path
        The folder holding ``VOCdevkit`` (or ``VOCdevkit`` / ``VOC2012`` itself).
    image_size : int
        Side of the square output (the paper: 224).
    year : str
        ``"2012"`` (other years with segmentations work the same way).
    include_difficult : bool
        Also use objects marked ``difficult``.
    classes : sequence of str or None
        Keep only objects of these VOC classes (labels follow this order); None = all 20.
    min_box_size : int
        Skip objects whose box is smaller than this many pixels on a side.
    image : ImageOptions or mapping, optional
        The image options (crop, aspect, augmentation, normalisation, file checks; see
        :class:`~kdexplain.data.base.ImageOptions`), over :attr:`image_defaults` (``crop_scale``: a multiple of the object box,
        1.2 by default as the paper; None = whole image).
    """

    name = "voc"
    image_defaults = ImageOptions(crop_scale=1.2)

    def __init__(self, split: str = "train", root: str | Path | None = None,
                 image_size: int = 224, *, year: str = "2012", include_difficult: bool = False,
                 classes: Sequence[str] | None = None, min_box_size: int = 0,
                 image: ImageOptions | Mapping[str, Any] | None = None):
        super().__init__(image_size, image)
        if root is None:
            raise ValueError("voc needs root=<folder holding VOCdevkit/VOC2012>. " + VOC_HOW)
        if split not in ("train", "val", "trainval"):
            raise ValueError(f"voc has the segmentation splits train, val and trainval, not "
                             f"{split!r} (VOC 2012 publishes no test masks)")
        self.class_names = list(classes) if classes else list(VOC_CLASSES)
        bad = [c for c in self.class_names if c not in VOC_CLASSES]
        if bad:
            raise ValueError(f"unknown VOC classes {bad}; the classes are {', '.join(VOC_CLASSES)}")
        tv_root, voc_root = resolve_voc_root(root, year)
        for sub in ("JPEGImages", "SegmentationClass", "Annotations"):
            expect_file(voc_root / sub, "the VOC folder", VOC_HOW)
        expect_file(voc_root / "ImageSets" / "Segmentation" / f"{split}.txt",
                    "the VOC split list", VOC_HOW)
        from torchvision.datasets import VOCSegmentation

        tv = VOCSegmentation(str(tv_root), year=year, image_set=split, download=False)
        object_dir = voc_root / "SegmentationObject"
        use_objects = object_dir.is_dir()
        label_of = {name: i for i, name in enumerate(self.class_names)}
        records: list[_Obj] = []
        for img, cls_png in zip(tv.images, tv.targets, strict=True):
            img, cls_png = Path(img), Path(cls_png)
            stem = img.stem
            xml = expect_file(voc_root / "Annotations" / f"{stem}.xml", "the VOC annotation",
                              VOC_HOW)
            ann = parse_voc_xml(xml, one_based=True)
            for k, obj in enumerate(ann.objects):
                if obj.name not in label_of or (obj.difficult and not include_difficult):
                    continue
                x0, y0, x1, y1 = obj.box
                if min(x1 - x0, y1 - y0) < min_box_size:
                    continue
                records.append(_Obj(img, cls_png, object_dir / f"{stem}.png" if use_objects
                                    else None, k + 1, label_of[obj.name], obj.box,
                                    f"voc/{stem}/{k}"))
        self._records = self._verified(records, lambda r: (r.image, r.class_png))
        self.split = split

    def raw_sample(self, index: int) -> RawSample:
        r = self._records[index]
        image = load_rgb(r.image)
        classes = load_label_png(r.class_png)
        check_mask_shape(classes, image, r.class_png, r.image)
        voc_id = VOC_CLASSES.index(self.class_names[r.label]) + 1
        mask = None
        if r.object_png is not None and r.object_png.is_file():
            instances = load_label_png(r.object_png)
            check_mask_shape(instances, image, r.object_png, r.image)
            inst = instances == r.instance
            # instance k is the k-th XML object; trust it only if its pixels have its class
            if inst.any() and np.mean(classes[inst] == voc_id) > 0.9:
                mask = inst
        if mask is None:
            mask = classes == voc_id
        return RawSample(image, torch.from_numpy(np.ascontiguousarray(mask)),
                         torch.tensor(r.box, dtype=torch.float32), r.label, r.key)
