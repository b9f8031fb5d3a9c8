"""Real-dataset loaders on tiny trees fabricated in each dataset's exact on-disk layout.

Every fabricated image shows its objects in pure red or green on a blue background, and
its mask / trimap / segmentation marks exactly those pixels, so after any crop, pad,
resize or flip the item's mask must coincide with the object's colour.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from kdexplain.data import (
    CorruptImageError,
    CorruptImageWarning,
    build_dataset,
    center_mask,
    readable_items,
)
from kdexplain.data.transforms import mask_box

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


# ----------------------------------------------------------------------------- helpers

def ellipse(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Bool (h, w): the ellipse inscribed in box = (x0, y0, x1, y1), pixel edges."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return (((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2
            + ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2) <= 1.0


def paint(h: int, w: int, objects: list[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[...] = BLUE
    for mask, colour in objects:
        img[mask] = colour
    return img


def save_jpg(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95, subsampling=0)  # no chroma blur at edges


def save_png(path: Path, arr: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr.astype(np.uint8), mode="L")
    if palette:
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, i)])
    im.save(path)


def ring(mask: np.ndarray, px: int = 1) -> np.ndarray:
    t = torch.from_numpy(mask)[None, None].float()
    grown = F.max_pool2d(t, 2 * px + 1, stride=1, padding=px)[0, 0].numpy() > 0
    return grown & ~mask


def assert_aligned(item: dict, colour: tuple[int, int, int] = RED) -> None:
    """The mask is where the object covers at least half of a pixel.

    Every pixel of a fabricated image is a blend ``c * colour + (1 - c) * blue`` after
    resampling, so its object coverage is ``c = (x[ch] - x[blue] + 1) / 2``. Pixels at
    least 70 % object must be in the mask, pixels at most 30 % object must not; only the
    blended edge in between is free (and padding, which is neither colour).
    """
    img, mask = item["image"], item["mask"]
    ch = colour.index(255)
    cover = (img[ch] - img[2] + 1) / 2
    assert mask.any(), "empty mask"
    assert mask[cover >= 0.7].all(), f"{int((~mask & (cover >= 0.7)).sum())} object pixels " \
        "outside the mask"
    assert not mask[cover <= 0.3].any(), f"{int((mask & (cover <= 0.3)).sum())} mask pixels " \
        "without the object"
    edge = (cover > 0.3) & (cover < 0.7)
    assert edge.float().mean() < 0.25


# ----------------------------------------------------------------------------- fabricators

PET_IDS = [("Abyssinian_1", 1, 1), ("Abyssinian_2", 1, 1), ("Abyssinian_3", 1, 1),
           ("basset_hound_1", 2, 2), ("basset_hound_2", 2, 2), ("basset_hound_3", 2, 2)]


def make_pets(root: Path) -> Path:
    base = root / "oxford-iiit-pet"
    lines = {"trainval": [], "test": []}
    for k, (pid, cls, species) in enumerate(PET_IDS):
        h, w = 48 + 4 * k, 64
        pet = ellipse(h, w, (8 + k, 6, 50 + k, 40))
        border = ring(pet, 2)
        trimap = np.full((h, w), 2, dtype=np.uint8)
        trimap[pet] = 1
        trimap[border] = 3
        save_jpg(base / "images" / f"{pid}.jpg", paint(h, w, [(pet | border, RED)]))
        save_png(base / "annotations" / "trimaps" / f"{pid}.png", trimap)
        lines["test" if pid.endswith("_3") else "trainval"].append(f"{pid} {cls} {species} 1")
    for name, rows in lines.items():
        (base / "annotations" / f"{name}.txt").write_text("\n".join(rows) + "\n")
    return root


VOC_XML = """<annotation><folder>VOC2012</folder><filename>{stem}.jpg</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
VOC_OBJ = """<object><name>{name}</name><difficult>{difficult}</difficult><truncated>0</truncated>
<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"""


def make_voc(root: Path, instances: bool = True) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    h, w = 60, 80
    # image a: a cat (red, left) and a dog (green) touching the right edge; a difficult bird
    specs = {
        "2008_000001": [("cat", (6, 10, 34, 44), RED, 0), ("dog", (52, 20, 80, 50), GREEN, 0),
                        ("bird", (40, 2, 48, 10), RED, 1)],
        "2008_000002": [("dog", (20, 12, 60, 50), GREEN, 0)],
        "2008_000003": [("cat", (30, 30, 70, 58), RED, 0)],
    }
    for stem, objs in specs.items():
        classes = np.zeros((h, w), dtype=np.uint8)
        inst = np.zeros((h, w), dtype=np.uint8)
        painted = []
        for k, (name, box, colour, _) in enumerate(objs):
            m = ellipse(h, w, box)
            classes[m] = {"cat": 8, "dog": 12, "bird": 3}[name]
            inst[m] = k + 1
            painted.append((m, colour))
        void = ring(classes > 0, 1)
        classes[void] = 255
        inst[void] = 255
        save_jpg(voc / "JPEGImages" / f"{stem}.jpg", paint(h, w, painted))
        save_png(voc / "SegmentationClass" / f"{stem}.png", classes, palette=True)
        if instances:
            save_png(voc / "SegmentationObject" / f"{stem}.png", inst, palette=True)
        xml_objs = "".join(VOC_OBJ.format(name=n, difficult=d, xmin=b[0] + 1, ymin=b[1] + 1,
                                          xmax=b[2], ymax=b[3]) for n, b, _, d in objs)
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{stem}.xml").write_text(
            VOC_XML.format(stem=stem, w=w, h=h, objects=xml_objs))
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "train.txt").write_text("2008_000001\n2008_000002\n")
    (sets / "val.txt").write_text("2008_000003\n")
    return root


CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def make_cub(root: Path, segmentations: bool = True) -> Path:
    base = root / "CUB_200_2011"
    rows = {k: [] for k in ("images", "labels", "split", "boxes")}
    for i in range(6):
        cls = i % 2
        rel = f"{CUB_CLASSES[cls]}/{CUB_CLASSES[cls][4:]}_{i:04d}_{100 + i}.jpg"
        h, w = 50, 70
        box = (10 + 2 * i, 8, 50 + 2 * i, 42)
        bird = ellipse(h, w, box)
        save_jpg(base / "images" / rel, paint(h, w, [(bird, RED)]))
        if segmentations:
            seg = np.zeros((h, w), dtype=np.uint8)
            seg[bird] = 255
            seg[ring(bird, 1)] = 90  # soft edge below the 0.5 threshold: not foreground
            save_png(root / "segmentations" / Path(rel).with_suffix(".png"), seg)
        x0, y0, x1, y1 = box
        rows["images"].append(f"{i + 1} {rel}")
        rows["labels"].append(f"{i + 1} {cls + 1}")
        rows["split"].append(f"{i + 1} {0 if i >= 4 else 1}")
        rows["boxes"].append(f"{i + 1} {x0}.0 {y0}.0 {x1 - x0}.0 {y1 - y0}.0")
    (base / "images.txt").write_text("\n".join(rows["images"]) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(rows["labels"]) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(rows["split"]) + "\n")
    (base / "bounding_boxes.txt").write_text("\n".join(rows["boxes"]) + "\n")
    (base / "classes.txt").write_text("".join(f"{k + 1} {c}\n" for k, c in
                                              enumerate(CUB_CLASSES)))
    return root


def make_ilsvrc(root: Path) -> Path:
    base = root / "ILSVRC"
    h, w = 56, 72
    layout = {"train": [("n01443537/n01443537_1", [("n01443537", (10, 8, 40, 40)),
                                                    ("n01443537", (50, 40, 60, 50))]),
                        ("n01443537/n01443537_2", [("n01443537", (20, 10, 60, 46))]),
                        ("n01530575/n01530575_1", [("n01530575", (5, 5, 35, 30))])],
              "val": [("ILSVRC2012_val_00000001", [("n01530575", (30, 20, 70, 52))])]}
    for split, entries in layout.items():
        for rel, objs in entries:
            masks = []
            for _, (x0, y0, x1, y1) in objs:
                m = np.zeros((h, w), dtype=bool)
                m[y0:y1, x0:x1] = True
                masks.append((m, RED))
            save_jpg(base / "Data" / "CLS-LOC" / split / f"{rel}.JPEG", paint(h, w, masks))
            xml = "".join(VOC_OBJ.format(name=n, difficult=0, xmin=b[0], ymin=b[1],
                                         xmax=b[2] - 1, ymax=b[3] - 1) for n, b in objs)
            path = base / "Annotations" / "CLS-LOC" / split / f"{rel}.xml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(VOC_XML.format(stem=Path(rel).name, w=w, h=h, objects=xml))
    (root / "LOC_synset_mapping.txt").write_text(
        "n01443537 goldfish, Carassius auratus\nn01530575 brambling, Fringilla montifringilla\n")
    return root


def make_folder(root: Path, masks: Path | None = None) -> Path:
    for rel, box in [("cats/a.png", (4, 4, 30, 24)), ("cats/sub/b.jpg", (10, 6, 40, 30)),
                     ("dogs/c.png", (2, 10, 20, 30)), ("loose.png", (8, 8, 24, 24))]:
        m = ellipse(32, 44, box)
        arr = paint(32, 44, [(m, RED)])
        if rel.endswith(".jpg"):
            save_jpg(root / rel, arr)
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / rel)
        if masks is not None:
            save_png(masks / Path(rel).with_suffix(".png"), m.astype(np.uint8) * 255)
    return root


# ----------------------------------------------------------------------------- Pets

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


# ----------------------------------------------------------------------------- VOC

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


# ----------------------------------------------------------------------------- CUB

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


# ----------------------------------------------------------------------------- ILSVRC

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


# ----------------------------------------------------------------------------- folder

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
