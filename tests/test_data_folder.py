"""A plain image folder (kdexplain/data/folder.py): labels from subfolders, masks from a
mirror tree, keys, the aspect ratio kept and the centre cropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdexplain.data import build_dataset
from tests.data_common import assert_aligned, make_folder, save_png


def test_folder_labels_masks_and_keys(tmp_path):
    root = make_folder(tmp_path / "imgs", masks=tmp_path / "masks")
    ds = build_dataset("folder", root=root, mask_dir=tmp_path / "masks", image_size=32,
                       normalize=False)
    assert ds.class_names == ["cats", "dogs"]
    assert [ds[i]["key"] for i in range(4)] == ["cats/a.png", "cats/sub/b.jpg", "dogs/c.png",
                                                "loose.png"]
    assert ds.labels() == [0, 0, 1, -1]
    for i in range(4):
        assert_aligned(ds[i])
    plain = build_dataset(str(root), image_size=32)  # a folder path works as the name
    assert "mask" not in plain[0] and "box" not in plain[0] and len(plain) == 4
    (tmp_path / "masks" / "dogs" / "c.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"masks[/\\]dogs[/\\]c\.png.*1 of 4"):
        build_dataset("folder", root=root, mask_dir=tmp_path / "masks")
    with pytest.raises(FileNotFoundError, match="found none"):
        build_dataset("folder", root=tmp_path / "masks" / "..." if False else _empty(tmp_path))


def test_folder_images_keep_their_aspect_ratio_and_are_centre_cropped(tmp_path):
    from torchvision.transforms import v2

    root = tmp_path / "wide"
    root.mkdir()
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    arr[:, :10] = 0  # the left and right strips are cropped away, the centre kept
    Image.fromarray(arr).save(root / "a.png")
    m = np.zeros((30, 50), np.uint8)
    m[5:25, 20:30] = 255
    save_png(tmp_path / "masks" / "a.png", m)
    ds = build_dataset("folder", root=root, image_size=20, normalize=False,
                       mask_dir=tmp_path / "masks")
    got = ds[0]
    tv = v2.Compose([v2.Resize(20, antialias=True), v2.CenterCrop(20)])
    want = tv(torch.from_numpy(arr).permute(2, 0, 1)).float() / 255
    assert got["image"].shape == (3, 20, 20)
    torch.testing.assert_close(got["image"], want, rtol=0, atol=0)
    # 30x50 -> 20x33 (a pixel is foreground when >= half of it is), then columns 6..25 kept:
    # mask columns 20..29 of 50 -> 13..19 of 33 -> 7..13; rows 5..24 of 30 -> 3..16 of 20
    cols = got["mask"].any(0).nonzero().flatten()
    rows = got["mask"].any(1).nonzero().flatten()
    assert (int(cols.min()), int(cols.max())) == (7, 13)
    assert (int(rows.min()), int(rows.max())) == (3, 16)
    squashed = build_dataset("folder", root=root, image_size=20, keep_aspect=False)[0]
    assert squashed["image"].shape == (3, 20, 20)


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d
