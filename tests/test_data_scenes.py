"""The built-in scenes dataset: determinism, cache, splits, masks, the spurious knob."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kdexplain.data import ANIMAL_CLASSES, ScenesDataset, build_dataset, denormalize
from kdexplain.data.animals import (
    DATA_FILE,
    LABEL_FILE,
    NPZ_SHA256,
    animal_npz_path,
    load_animal_silhouettes,
    read_animal_pickles,
    safe_load_array,
    write_animal_npz,
)
from kdexplain.data.scenes import ScenesConfig, build_split
from kdexplain.data.transforms import mask_box

SMALL = dict(image_size=32, images_per_class=6, classes=["bear", "cow", "giraffe", "zebra"])


def test_items_follow_the_contract(tmp_path):
    ds = build_dataset("scenes", split="train", root=tmp_path, **SMALL)
    assert len(ds) == 24 and ds.num_classes == 4 and ds.image_size == 32
    assert ds.class_names == ["bear", "cow", "giraffe", "zebra"]
    it = ds[5]
    assert it["image"].shape == (3, 32, 32) and it["image"].dtype == torch.float32
    assert it["mask"].shape == (32, 32) and it["mask"].dtype == torch.bool
    assert it["box"].shape == (4,) and it["box"].dtype == torch.float32
    assert it["label"] == 5 % 4 and it["index"] == 5 and it["key"] == "scenes/train/000005"
    assert torch.equal(it["box"], mask_box(it["mask"]))
    assert it["image"].min() < 0  # ImageNet-normalised
    raw = build_dataset("scenes", split="train", root=tmp_path, normalize=False, **SMALL)[5]
    assert torch.allclose(denormalize(it["image"]), raw["image"], atol=1e-5)
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["mask"].shape == (8, 32, 32)
    assert batch["label"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3] and len(batch["key"]) == 8


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = ScenesDataset("val", cache_dir=tmp_path / "a", seed=3, **SMALL)
    b = ScenesDataset("val", cache_dir=tmp_path / "b", seed=3, **SMALL)
    c = ScenesDataset("val", cache_dir=tmp_path / "c", seed=4, **SMALL)
    assert a.cache_path.read_bytes() == b.cache_path.read_bytes()
    assert np.array_equal(a.uint8_images(), b.uint8_images())
    assert not np.array_equal(a.uint8_images(), c.uint8_images())
    assert not np.array_equal(a.masks(), c.masks())
    # a larger build extends a smaller one: image i does not depend on the count
    assert len(a) == 4  # val: images_per_class // 5 = 1 per class
    big = ScenesDataset("val", cache=False, seed=3, val_per_class=3, **SMALL)
    assert len(big) == 12 and np.array_equal(big.uint8_images()[:4], a.uint8_images())


def test_cache_is_reused_and_written_atomically(tmp_path, monkeypatch):
    cfg = ScenesConfig("test", 32, 2, 0, 0.0, ("cat", "dog"))
    _, path, built = build_split(cfg, tmp_path)
    assert built and path.is_file() and path.parent == tmp_path
    stamp = path.stat().st_mtime_ns
    _, path2, built2 = build_split(cfg, tmp_path)
    assert not built2 and path2 == path and path.stat().st_mtime_ns == stamp
    # an interrupted build leaves neither a cache file nor a temporary file behind
    cfg2 = ScenesConfig("test", 32, 3, 0, 0.0, ("cat", "dog"))
    import kdexplain.utils.io as io_mod

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(io_mod.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_split(cfg2, tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    # a damaged cache file is rebuilt, not trusted
    path.write_bytes(b"not an npz")
    arrays, _, rebuilt = build_split(cfg, tmp_path)
    assert rebuilt and arrays["images"].shape == (4, 32, 32, 3)


def test_splits_use_disjoint_silhouettes_and_balanced_prefixes():
    opts = dict(cache=False, image_size=16, images_per_class=30, val_per_class=30,
                test_per_class=30, classes=["horse", "sheep"])
    sil = {s: set(ScenesDataset(s, **opts).silhouettes.tolist()) for s in ("train", "val", "test")}
    assert not sil["train"] & sil["val"] and not sil["train"] & sil["test"]
    assert not sil["val"] & sil["test"]
    _, labels = load_animal_silhouettes()
    ds = ScenesDataset("train", **opts)
    assert all(ANIMAL_CLASSES[labels[s]] == ds.class_names[y]
               for s, y in zip(ds.silhouettes.tolist(), ds.labels(), strict=True))
    assert ds.labels()[:4] == [0, 1, 0, 1]


def test_masks_are_plausible_objects():
    ds = ScenesDataset("train", cache=False, image_size=64, images_per_class=4, seed=1)
    m = ds.masks()
    share = m.reshape(len(m), -1).mean(1)
    assert share.min() > 0.03 and share.max() < 0.8 and 0.1 < share.mean() < 0.45
    # the object is one main blob: its bounding box covers most of its pixels' extent
    for i in range(len(ds)):
        x0, y0, x1, y1 = mask_box(torch.from_numpy(m[i].copy())).tolist()
        assert (x1 - x0) >= 0.3 * 64 or (y1 - y0) >= 0.3 * 64


def _background_features(ds):
    x = ds.uint8_images().astype(np.float32) / 255.0
    bg = ~ds.masks()
    return np.stack([np.concatenate([x[i][bg[i]].mean(0), x[i][bg[i]].std(0)])
                     for i in range(len(x))])


def _loo_nearest_centroid(f, y):
    hits = 0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        cents = np.stack([f[keep][y[keep] == c].mean(0) for c in np.unique(y)])
        hits += int(np.argmin(((cents - f[i]) ** 2).sum(1)) == y[i])
    return hits / len(y)


def test_spurious_background_ties_background_to_class():
    opts = dict(cache=False, image_size=32, images_per_class=12,
                classes=["bear", "cow", "dog", "zebra"])
    tied = ScenesDataset("train", spurious_background=1.0, **opts)
    free = ScenesDataset("train", spurious_background=0.0, **opts)
    half = ScenesDataset("train", spurious_background=0.5, **opts)
    y = np.array(tied.labels())
    assert (tied.backgrounds.numpy() == y % 10).all()
    assert (free.backgrounds.numpy() == y % 10).mean() < 0.3
    assert 0.35 < (half.backgrounds.numpy() == y % 10).mean() < 0.8
    # measurable from the pixels alone: background colour statistics predict the class
    acc_tied = _loo_nearest_centroid(_background_features(tied), y)
    acc_free = _loo_nearest_centroid(_background_features(free), y)
    assert acc_tied > 0.7 and acc_free < 0.45 and acc_tied - acc_free > 0.35


def test_augmentation_keeps_mask_and_box_consistent():
    torch.manual_seed(0)
    ds = ScenesDataset("train", cache=False, image={"augment": True, "normalize": False},
                       image_size=32, images_per_class=2, classes=["cat", "dog"])
    plain = ScenesDataset("train", cache=False, image={"normalize": False}, image_size=32,
                          images_per_class=2, classes=["cat", "dog"])
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].shape == (3, 32, 32)
        assert torch.equal(it["box"], mask_box(it["mask"]))
        # crops of at least 60 % of the area keep a good part of the object
        assert it["mask"].sum() > 0.3 * plain[i]["mask"].sum()


def test_bad_options_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="splits train, val, test"):
        ScenesDataset("holdout", cache=False)
    with pytest.raises(ValueError, match="spurious_background is a probability"):
        ScenesDataset("train", cache=False, spurious_background=1.5)
    with pytest.raises(ValueError, match="classes must be distinct names among bear"):
        ScenesDataset("train", cache=False, classes=["unicorn"])
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        build_dataset("imagenet")
    with pytest.raises(ValueError, match="needs root="):
        build_dataset("cub")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_silhouettes_are_read_without_unpickling_code(tmp_path):
    images, labels = load_animal_silhouettes()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    assert 0.35 < (images > 0).mean() < 0.43
    evil = tmp_path / "evil.gz"
    with gzip.open(evil, "wb") as f:
        pickle.dump(_Evil(), f)
    with pytest.raises(ValueError, match="refusing to unpickle posix.system|refusing to "
                                         "unpickle os.system|refusing to unpickle nt.system"):
        safe_load_array(evil)
    ok = tmp_path / "ok.gz"
    with gzip.open(ok, "wb") as f:
        pickle.dump(np.arange(6, dtype=np.int64).reshape(2, 3), f)
    assert safe_load_array(ok).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_shipped_silhouettes_have_the_recorded_checksum():
    images, labels = load_animal_silhouettes()
    assert hashlib.sha256(images.tobytes()).hexdigest() == NPZ_SHA256["images"]
    assert hashlib.sha256(labels.tobytes()).hexdigest() == NPZ_SHA256["labels"]
    assert labels[:3].tolist() == [0, 0, 0] and labels[-1] == 9
    with np.load(animal_npz_path(), allow_pickle=False) as z:  # no pickle inside
        assert sorted(z.files) == ["images", "labels"]
    assert (animal_npz_path().parent / "LICENSE").read_text().startswith("MIT License")


def test_pickles_in_the_animal_mnist_form_convert_to_the_shipped_arrays(tmp_path):
    # the animal-mnist package is no dependency: its two gzipped pickles are written here in
    # its form (uint8 images (n, 28, 28), int64 labels) from a slice of the shipped arrays
    images, labels = load_animal_silhouettes()
    part_images, part_labels = images[::250].copy(), labels[::250].copy()
    for name, array in ((DATA_FILE, part_images), (LABEL_FILE, part_labels)):
        with gzip.open(tmp_path / name, "wb") as f:
            pickle.dump(array, f)
    got_images, got_labels = read_animal_pickles(tmp_path)
    assert np.array_equal(got_images, part_images) and got_images.dtype == np.uint8
    assert np.array_equal(got_labels, part_labels) and sorted(set(got_labels.tolist())) == list(range(10))
    out = write_animal_npz(tmp_path, tmp_path / "a.npz")
    with np.load(out, allow_pickle=False) as z:
        assert np.array_equal(z["images"], part_images) and np.array_equal(z["labels"], part_labels)


def test_pickle_reader_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="animal_data_version_3.gz"):
        read_animal_pickles(tmp_path)


def test_a_split_is_the_same_however_many_processes_render_it():
    from kdexplain.data.scenes import ScenesConfig, generate_split

    cfg = ScenesConfig(split="train", image_size=16, images_per_class=120, seed=3,
                       spurious_background=0.0, classes=("bird", "cat", "zebra"))
    one = generate_split(cfg, show_progress=False, workers=1)
    two = generate_split(cfg, show_progress=False, workers=2)
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
