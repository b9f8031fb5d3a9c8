"""mask_to_grid, cell mapping, centre masks, normalisation and the joint pipeline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from kdexplain.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    JointPipeline,
    cell_index,
    center_mask,
    collate,
    denormalize,
    mask_to_grid,
    normalize,
)
from kdexplain.data.transforms import mask_box, scale_box


def _brute_fraction(mask: torch.Tensor, grid: int, threshold: float = 0.5) -> torch.Tensor:
    """Cell shares computed from the upsampled grid itself (the definition of a cell)."""
    h, w = mask.shape
    ids = torch.arange(grid * grid, dtype=torch.float32).reshape(1, 1, grid, grid)
    cell_of_pixel = F.interpolate(ids, size=(h, w), mode="nearest")[0, 0].long()
    out = torch.zeros(grid * grid, dtype=torch.bool)
    for c in range(grid * grid):
        sel = cell_of_pixel == c
        if sel.any():
            out[c] = mask[sel].float().mean() >= threshold
    return out.reshape(grid, grid)


def test_fraction_rule_golden_divisible():
    m = torch.zeros(4, 4, dtype=torch.bool)
    m[0, 0] = m[0, 1] = True            # cell (0,0): 2 of 4 pixels -> 0.5 -> foreground
    m[0, 2] = True                      # cell (0,1): 1 of 4 -> background
    m[2:4, 2:4] = True                  # cell (1,1): 4 of 4
    m[3, 0] = True                      # cell (1,0): 1 of 4
    expected = torch.tensor([[True, False], [False, True]])
    assert torch.equal(mask_to_grid(m, 2), expected)
    assert torch.equal(mask_to_grid(m, 2, threshold=0.25), torch.ones(2, 2, dtype=torch.bool))


def test_fraction_rule_golden_not_divisible():
    # H = W = 5, grid 2: nearest upsampling maps pixels 0,1,2 -> cell 0 and 3,4 -> cell 1,
    # so cell (0,0) has 9 pixels, (0,1) 6, (1,0) 6, (1,1) 4.
    assert cell_index(5, 2).tolist() == [0, 0, 0, 1, 1]
    m = torch.zeros(5, 5, dtype=torch.bool)
    m[0:2, 0:2] = True
    m[2, 0] = True                      # 5 of 9 in cell (0,0) -> foreground
    m[0, 3:5] = True
    m[1, 3] = True                      # 3 of 6 in cell (0,1) -> exactly 0.5 -> foreground
    m[3, 0:2] = True                    # 2 of 6 in cell (1,0) -> background
    m[3:5, 3] = True                    # 2 of 4 in cell (1,1) -> foreground
    assert torch.equal(mask_to_grid(m, 2), torch.tensor([[True, True], [False, True]]))
    m[2, 0] = False                     # 4 of 9 -> background
    assert not mask_to_grid(m, 2)[0, 0]


def test_nearest_rule_golden():
    # the original rule samples pixel floor(i * H / g): for H = 5, g = 2 rows/cols 0 and 2
    m = torch.zeros(5, 5, dtype=torch.bool)
    m[2, 2] = True
    assert torch.equal(mask_to_grid(m, 2, rule="nearest"), torch.tensor([[False, False],
                                                                         [False, True]]))
    m = torch.zeros(5, 5, dtype=torch.bool)
    m[0, 2] = True
    assert torch.equal(mask_to_grid(m, 2, rule="nearest"), torch.tensor([[False, True],
                                                                         [False, False]]))
    # a single foreground pixel far from the sampled ones is lost by "nearest"
    m = torch.zeros(5, 5, dtype=torch.bool)
    m[1, 1] = True
    assert not mask_to_grid(m, 2, rule="nearest").any()


def test_cell_index_matches_float32_upsampling_where_exact_math_differs():
    # float32 scale: pixel 41 of 82 lands in cell 7, not floor(41 * 16 / 82) = 8
    assert cell_index(82, 16)[41].item() == 7
    for h, w, g in [(82, 79, 16), (224, 224, 16), (64, 64, 16), (37, 50, 7), (8, 8, 16)]:
        ids = torch.arange(g * g, dtype=torch.float32).reshape(1, 1, g, g)
        up = F.interpolate(ids, size=(h, w), mode="nearest")[0, 0].long()
        assert torch.equal(up, cell_index(h, g)[:, None] * g + cell_index(w, g)[None, :])


@pytest.mark.parametrize("h,w,g", [(64, 64, 16), (82, 79, 16), (30, 45, 7), (10, 10, 16)])
def test_fraction_rule_equals_definition(h, w, g):
    gen = torch.Generator().manual_seed(h * w + g)
    m = torch.rand(h, w, generator=gen) < 0.4
    m[: h // 2, : w // 3] = True  # some structure
    got = mask_to_grid(m, g)
    if h >= g and w >= g:
        assert torch.equal(got, _brute_fraction(m, g))
    else:  # cells that cover no pixel take the nearest rule's value
        empty = ~torch.outer(torch.bincount(cell_index(h, g), minlength=g).bool(),
                             torch.bincount(cell_index(w, g), minlength=g).bool())
        near = mask_to_grid(m, g, rule="nearest")
        assert torch.equal(got[empty], near[empty])


def test_batch_dims_float_masks_and_errors():
    m = torch.zeros(2, 3, 8, 8)
    m[1, 2, :4, :4] = 1.0
    out = mask_to_grid(m, 4)
    assert out.shape == (2, 3, 4, 4) and out.dtype == torch.bool
    assert out[1, 2, :2, :2].all() and out.sum() == 4
    with pytest.raises(ValueError, match="unknown mask rule 'majority'"):
        mask_to_grid(m, 4, rule="majority")
    with pytest.raises(ValueError, match=r"shape \(..., H, W\)"):
        mask_to_grid(torch.ones(5), 4)


@pytest.mark.parametrize("size", [224, 64, 100])
def test_center_mask_is_the_papers_square_under_both_rules(size):
    c = center_mask(size, size, 16)
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[2:14, 2:14] = True
    assert torch.equal(mask_to_grid(c, 16), expected)
    if size % 16 == 0:  # otherwise the original's nearest rule samples pixels of other cells
        assert torch.equal(mask_to_grid(c, 16, rule="nearest"), expected)
    else:
        assert not torch.equal(mask_to_grid(c, 16, rule="nearest"), expected)
    if size == 224:  # 14-pixel cells: rows/cols 28..195
        rows = torch.nonzero(c.any(1)).flatten()
        assert rows[0].item() == 28 and rows[-1].item() == 195


def test_normalize_denormalize_round_trip():
    x = torch.rand(2, 3, 5, 6)
    assert torch.allclose(denormalize(normalize(x)), x, atol=1e-6)
    zero = denormalize(torch.zeros(3, 2, 2))
    assert torch.allclose(zero[:, 0, 0], torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(normalize(torch.ones(3, 1, 1))[:, 0, 0],
                          (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD))
    with pytest.raises(ValueError, match="expected an image of shape"):
        denormalize(torch.zeros(4, 5, 5))


def test_mask_box_and_scale_box():
    m = torch.zeros(10, 12, dtype=torch.bool)
    m[2:5, 3:9] = True
    assert mask_box(m).tolist() == [3.0, 2.0, 9.0, 5.0]
    assert mask_box(torch.zeros(4, 4, dtype=torch.bool)).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert scale_box((10, 20, 30, 60), 1.2) == (8, 16, 32, 64)


def _two_colour(h=40, w=60):
    """Red object (rows 8..23, cols 30..57) on blue; returns uint8 image and mask."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[8:24, 30:58] = True
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    img[2] = 255
    img[:, mask] = torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None]
    return img, mask


def _cover(image01: torch.Tensor) -> torch.Tensor:
    """Object share of each pixel of a red-on-blue image: ``(R - B + 1) / 2``."""
    return (image01[0] - image01[2] + 1) / 2


def assert_aligned(image01: torch.Tensor, mask: torch.Tensor) -> None:
    """Pixels >= 70 % object are in the mask, pixels <= 30 % object are not."""
    cover = _cover(image01)
    assert mask.any()
    assert mask[cover >= 0.7].all(), "object pixels outside the mask"
    assert not mask[cover <= 0.3].any(), "mask pixels without the object"


def test_pipeline_keeps_mask_on_the_object_through_crop_pad_resize_flip():
    img, mask = _two_colour()
    pipe = JointPipeline(32, crop_scale=1.6, normalize=False,
                         transform=v2.RandomHorizontalFlip(p=1.0))
    out = pipe(img, mask, torch.tensor([30.0, 8.0, 58.0, 24.0]))
    assert out["image"].shape == (3, 32, 32) and out["mask"].shape == (32, 32)
    # the 1.6x crop leaves the image on the right: padded with the mean colour, background
    assert_aligned(out["image"], out["mask"])
    # object box 28 x 16 -> crop 45 x 26 around its centre -> object fills 1/1.6 of it
    x0, y0, x1, y1 = out["box"].tolist()
    assert abs((x1 - x0) - 32 / 1.6) < 1.0 and abs((y1 - y0) - 32 / 1.6) < 1.0
    pad = (out["image"][1] > 0.3) & (out["image"][2] < 0.6)  # green channel: only padding
    assert pad.any() and not out["mask"][pad].any()
    assert torch.allclose(out["image"][:, pad].mean(1), torch.tensor(IMAGENET_MEAN), atol=0.01)
    # the flip really happened: the padding (right of the image) is now on the left
    assert pad[:, :4].any() and not pad[:, -4:].any()


def test_pipeline_augmentation_keeps_alignment_and_errors():
    img, mask = _two_colour()
    torch.manual_seed(0)
    pipe = JointPipeline(24, augment=True, normalize=False)
    for _ in range(5):
        out = pipe(img, mask)
        assert_aligned(out["image"], out["mask"])
        if out["mask"].any():
            assert torch.equal(out["box"], mask_box(out["mask"]))
    with pytest.raises(ValueError, match=r"mask of shape \(5, 5\) does not match"):
        pipe(img, torch.zeros(5, 5, dtype=torch.bool))
    bad = JointPipeline(24, transform=v2.CenterCrop(10))
    with pytest.raises(ValueError, match="must keep"):
        bad(img, mask)


def test_collate_stacks_items_and_names_the_problem():
    items = [{"image": torch.zeros(3, 4, 4), "mask": torch.zeros(4, 4, dtype=torch.bool),
              "box": torch.zeros(4), "label": i, "index": i, "key": f"k{i}"} for i in range(3)]
    b = collate(items)
    assert b["image"].shape == (3, 3, 4, 4) and b["label"].tolist() == [0, 1, 2]
    assert b["key"] == ["k0", "k1", "k2"]
    items[1]["mask"] = torch.zeros(5, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="masks of different shapes"):
        collate(items)
