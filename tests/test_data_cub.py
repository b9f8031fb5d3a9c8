"""CUB-200-2011 (kdexplain/data/cub.py) on a fabricated tree: segmentations, splits, the box
crop, missing files and malformed lines named."""

from __future__ import annotations

import pytest

from kdexplain.data import build_dataset
from tests.data_common import assert_aligned, make_cub


def test_cub_segmentations_splits_and_box_crop(tmp_path):
    root = make_cub(tmp_path)
    trainval = build_dataset("cub", split="trainval", root=root, image_size=40, normalize=False)
    test = build_dataset("cub", split="test", root=root, image_size=40, normalize=False)
    assert len(trainval) == 4 and len(test) == 2
    assert trainval.class_names == ["Black_footed_Albatross", "Laysan_Albatross"]
    assert trainval.labels() == [0, 1, 0, 1]
    for i in range(len(trainval)):
        assert_aligned(trainval[i])
    assert test[0]["key"].startswith("cub/001.Black_footed_Albatross/")
    cropped = build_dataset("cub", split="test", root=root, image_size=40, normalize=False,
                            crop_scale=1.0)
    it = cropped[0]
    assert_aligned(it)
    assert it["box"].tolist() == pytest.approx([0.0, 0.0, 40.0, 40.0], abs=0.5)
    boxed = build_dataset("cub", split="test", root=root, image_size=40, masks="box",
                          crop_scale=1.0)
    assert boxed[0]["mask"].all()


def test_cub_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CUB_200_2011[/\\]images.*CUB_200_2011\.tgz"):
        build_dataset("cub", root=tmp_path)
    root = make_cub(tmp_path / "noseg", segmentations=False)
    with pytest.raises(FileNotFoundError, match=r"segmentations.*masks='box'"):
        build_dataset("cub", root=root)
    assert len(build_dataset("cub", split="trainval", root=root, masks="box")) == 4
    boxes = root / "CUB_200_2011" / "bounding_boxes.txt"
    boxes.write_text(boxes.read_text().replace("3 14.0 8.0 40.0 34.0", "3 14.0 8.0"))
    with pytest.raises(ValueError, match=r"malformed line 3 of .*bounding_boxes\.txt"):
        build_dataset("cub", root=root, masks="box")
