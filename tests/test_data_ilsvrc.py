"""ILSVRC (kdexplain/data/ilsvrc.py) on a fabricated tree: box foregrounds, the largest
object, class names, a wrong root named."""

from __future__ import annotations

import pytest
import torch

from kdexplain.data import build_dataset, center_mask
from tests.data_common import assert_aligned, make_ilsvrc


def test_ilsvrc_box_foreground_largest_object_and_classes(tmp_path):
    root = make_ilsvrc(tmp_path)
    ds = build_dataset("ilsvrc", split="train", root=root, image_size=48, normalize=False)
    assert ds.class_names == ["goldfish", "brambling"] and ds.wnids[0] == "n01443537"
    assert len(ds) == 3 and ds.labels() == [0, 0, 1]
    for i in range(len(ds)):
        assert_aligned(ds[i])
        x0, y0, x1, y1 = ds[i]["box"].tolist()
        assert abs((x1 - x0) - 48 / 1.2) < 1.5  # 1.2x crop around the (largest) box
    every = build_dataset("ilsvrc", split="train", root=root, objects="all")
    assert len(every) == 4
    val = build_dataset("ilsvrc", split="val", root=root / "ILSVRC", image_size=48)
    assert len(val) == 1 and val.labels() == [1]
    centre = build_dataset("ilsvrc", split="val", root=root, image_size=48, foreground="center")
    assert torch.equal(centre[0]["mask"], center_mask(48, 48, 16))


def test_ilsvrc_wrong_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Annotations.*image-net\.org"):
        build_dataset("ilsvrc", root=tmp_path)
    root = make_ilsvrc(tmp_path)
    with pytest.raises(ValueError, match="splits train and val"):
        build_dataset("ilsvrc", split="test", root=root)
