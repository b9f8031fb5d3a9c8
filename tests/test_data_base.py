"""kdexplain.data.base: the image options every dataset class shares (ImageOptions)."""

from __future__ import annotations

import pytest

from kdexplain.data import (
    CUBDataset,
    FolderDataset,
    ILSVRCDataset,
    ImageOptions,
    PetsDataset,
    ScenesDataset,
    VOCObjectsDataset,
    build_dataset,
)
from kdexplain.data.base import IMAGE_OPTION_NAMES

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
