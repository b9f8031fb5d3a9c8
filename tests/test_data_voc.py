"""Pascal VOC objects (kdexplain/data/voc.py) on a fabricated tree: object crops, padding,
instance and class maps, wrong roots and malformed annotations named."""

from __future__ import annotations

import pytest
import torch

from kdexplain.data import build_dataset
from kdexplain.data.transforms import mask_box
from tests.data_common import GREEN, RED, assert_aligned, make_voc


def test_voc_object_crops_padding_and_instances(tmp_path):
    root = make_voc(tmp_path)
    ds = build_dataset("voc", split="train", root=root, image_size=48, normalize=False)
    # image 1: cat and dog (the difficult bird is left out), image 2: a dog
    assert [ds[i]["key"] for i in range(len(ds))] == ["voc/2008_000001/0", "voc/2008_000001/1",
                                                      "voc/2008_000002/0"]
    assert ds.labels() == [7, 11, 11] and ds.class_names[7] == "cat"
    cat, dog, dog2 = ds[0], ds[1], ds[2]
    assert_aligned(cat, RED)
    assert_aligned(dog, GREEN)
    assert_aligned(dog2, GREEN)
    # the crop is 1.2x the box: the object's box spans 1/1.2 of the output
    for it in (cat, dog):
        x0, y0, x1, y1 = it["box"].tolist()
        assert abs((x1 - x0) - 48 / 1.2) < 1.5 and abs((y1 - y0) - 48 / 1.2) < 1.5
        mx0, my0, mx1, my1 = mask_box(it["mask"]).tolist()
        assert abs(mx0 - x0) <= 1.5 and abs(mx1 - x1) <= 1.5
    # the dog touches the right edge: its crop is padded there with the mean colour
    right = dog["image"][:, :, -3:]
    assert torch.allclose(right.mean((1, 2)), torch.tensor([0.485, 0.456, 0.406]), atol=0.02)
    assert not dog["mask"][:, -3:].any()
    with_bird = build_dataset("voc", split="train", root=root, include_difficult=True)
    assert len(with_bird) == 4
    assert len(build_dataset("voc", split="train", root=root, classes=["dog"])) == 2


def test_voc_without_instance_maps_uses_the_class_map(tmp_path):
    root = make_voc(tmp_path, instances=False)
    ds = build_dataset("voc", split="val", root=root / "VOCdevkit", image_size=32,
                       normalize=False, crop_scale=None)
    assert len(ds) == 1 and ds.labels() == [7]
    assert_aligned(ds[0], RED)


def test_voc_wrong_roots_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit[/\\]VOC2012[/\\]JPEGImages.*"
                                                r"VOCtrainval_11-May-2012\.tar"):
        build_dataset("voc", root=tmp_path)
    root = make_voc(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Segmentation[/\\]trainval\.txt"):
        build_dataset("voc", split="trainval", root=root)
    with pytest.raises(ValueError, match="publishes no test masks"):
        build_dataset("voc", split="test", root=root)
    (root / "VOCdevkit/VOC2012/Annotations/2008_000002.xml").write_text("<annotation><object>")
    with pytest.raises(ValueError, match=r"malformed XML annotation .*2008_000002\.xml"):
        build_dataset("voc", split="train", root=root)
