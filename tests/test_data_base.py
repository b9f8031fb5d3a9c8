"""kdexplain.data.base: the image options every dataset class shares (ImageOptions), and
corrupt images reported, counted and skipped."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from kdexplain.data import (
    CorruptImageError,
    CorruptImageWarning,
    CUBDataset,
    FolderDataset,
    ILSVRCDataset,
    ImageOptions,
    PetsDataset,
    ScenesDataset,
    VOCObjectsDataset,
    build_dataset,
    readable_items,
)
from kdexplain.data.base import IMAGE_OPTION_NAMES
from tests.data_common import make_cub, make_folder

SMALL = dict(image_size=32, images_per_class=2, classes=["bear", "cow"], cache=False)


def test_each_class_keeps_its_own_defaults():
    assert VOCObjectsDataset.image_defaults.crop_scale == 1.2
    assert ILSVRCDataset.image_defaults.crop_scale == 1.2
    assert CUBDataset.image_defaults == PetsDataset.image_defaults == ImageOptions()
    assert FolderDataset.image_defaults == ImageOptions(keep_aspect=True)
    assert ScenesDataset.image_defaults.verify == "none"


def test_a_mapping_applies_over_the_class_defaults_and_an_instance_replaces_them():
    voc = VOCObjectsDataset.image_defaults
    assert voc.updated({"augment": True}) == ImageOptions(crop_scale=1.2, augment=True)
    assert voc.updated(None) == voc
    mine = ImageOptions(normalize=False)
    assert voc.updated(mine) is mine
    with pytest.raises(ValueError, match="unknown image option.*crop_size.*crop_scale"):
        voc.updated({"crop_size": 2})
    with pytest.raises(ValueError, match="verify must be one of header, full, none"):
        ImageOptions(verify="quick")


def test_flat_options_reach_the_image_options_and_the_pipeline(tmp_path):
    ds = build_dataset("scenes", split="train", root=tmp_path, normalize=False,
                       crop_scale=1.5, **SMALL)
    assert ds.image == ImageOptions(crop_scale=1.5, normalize=False, verify="none")
    assert ds.pipeline.crop_scale == 1.5 and not ds.pipeline.normalize
    assert 0.0 <= float(ds[0]["image"].min()) and float(ds[0]["image"].max()) <= 1.0
    direct = ScenesDataset("train", root=tmp_path, image={"normalize": False}, **SMALL)
    assert direct.image == ImageOptions(normalize=False, verify="none")


def test_an_unknown_option_lists_the_image_options_too(tmp_path):
    with pytest.raises(ValueError, match="unknown option.*'normalise'.*normalize") as err:
        build_dataset("scenes", split="train", root=tmp_path, normalise=False, **SMALL)
    assert all(name in str(err.value) for name in IMAGE_OPTION_NAMES)


def test_corrupt_images_are_reported_counted_and_skipped(tmp_path):
    root = make_folder(tmp_path / "imgs")
    bad = root / "cats" / "a.png"
    bad.write_bytes(b"this is not a png")
    with pytest.warns(CorruptImageWarning, match=r"cats[/\\]a\.png"):
        ds = build_dataset("folder", root=root, image_size=16)
    assert len(ds) == 3 and [s.path for s in ds.skipped] == [str(bad)]
    # a truncated JPEG passes the header check; it is skipped when it is decoded
    jpg = root / "cats" / "sub" / "b.jpg"
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        ds = build_dataset("folder", root=root, image_size=16)
    assert len(ds) == 3 and len(ds.skipped) == 1
    # it is never replaced by another sample (that counted dogs/c.png twice)
    with pytest.raises(CorruptImageError, match=r"b\.jpg"):
        ds[0]
    assert ds[1]["key"] == "dogs/c.png" and ds[1]["index"] == 1
    with pytest.warns(CorruptImageWarning, match=r"b\.jpg"):
        items = readable_items(ds, range(len(ds)))
    assert [it["key"] for it in items] == ["dogs/c.png", "loose.png"]  # each once, b.jpg left out
    assert [Path(s.path).name for s in ds.skipped] == ["a.png", "b.jpg"]
    with pytest.warns(CorruptImageWarning):
        assert [it["key"] for it in readable_items(ds, range(3), limit=1)] == ["dogs/c.png"]


def test_corrupt_image_in_a_real_layout(tmp_path):
    root = make_cub(tmp_path)
    first = sorted((root / "CUB_200_2011" / "images").rglob("*.jpg"))[0]
    first.write_bytes(b"\x00" * 100)
    with pytest.warns(CorruptImageWarning):
        ds = build_dataset("cub", split="trainval", root=root)
    assert len(ds) == 3 and ds.skipped[0].path == str(first)
