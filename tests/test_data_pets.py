"""Oxford-IIIT Pets (kdexplain/data/pets.py) on a fabricated tree: trimaps, splits, the
stratified validation holdout, missing files named."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from kdexplain.data import build_dataset
from tests.data_common import assert_aligned, make_pets


def test_pets_trimaps_splits_and_alignment(tmp_path):
    root = make_pets(tmp_path)
    train = build_dataset("pets", split="trainval", root=root, image_size=40, normalize=False)
    test = build_dataset("pets", split="test", root=root, image_size=40, normalize=False)
    assert len(train) == 4 and len(test) == 2 and train.num_classes == 2
    assert train.class_names == ["Abyssinian", "Basset Hound"]
    assert sorted(train.labels()) == [0, 0, 1, 1]
    for i in range(len(train)):
        assert_aligned(train[i])
    assert train[0]["key"] == "pets/Abyssinian_1"
    flipped = build_dataset("pets", split="test", root=root, image_size=40, normalize=False,
                            transform=v2.RandomHorizontalFlip(p=1.0))
    assert_aligned(flipped[0])
    assert torch.equal(flipped[0]["mask"], test[0]["mask"].flip(-1))
    bg = build_dataset("pets", split="test", root=root, image_size=40, border="bg")
    assert bg[0]["mask"].sum() < test[0]["mask"].sum()
    ignored = build_dataset("pets", split="test", root=root, image_size=40, border="ignore")
    assert torch.equal(ignored[0]["mask"], bg[0]["mask"])
    with pytest.raises(ValueError, match="border must be one of fg, bg, ignore"):
        build_dataset("pets", root=root, border="maybe")


def test_pets_val_is_a_stable_stratified_holdout(tmp_path):
    root = make_pets(tmp_path)
    val = build_dataset("pets", split="val", root=root, val_fraction=0.5)
    train = build_dataset("pets", split="train", root=root, val_fraction=0.5)
    assert sorted(val.labels()) == [0, 1] and sorted(train.labels()) == [0, 1]
    keys = {val[i]["key"] for i in range(len(val))} | {train[i]["key"] for i in range(len(train))}
    assert len(keys) == 4
    again = build_dataset("pets", split="val", root=root / "oxford-iiit-pet", val_fraction=0.5)
    assert [again[i]["key"] for i in range(2)] == [val[i]["key"] for i in range(2)]


def test_pets_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"oxford-iiit-pet[/\\]images.*download=True"):
        build_dataset("pets", root=tmp_path)
    root = make_pets(tmp_path)
    (root / "oxford-iiit-pet" / "annotations" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotations[/\\]test\.txt"):
        build_dataset("pets", root=root)
