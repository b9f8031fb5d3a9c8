"""What the real-dataset tests share: tiny trees fabricated in each dataset's exact on-disk
layout (Pets, VOC, CUB, ILSVRC, a plain folder).

Every fabricated image shows its objects in pure red or green on a blue background, and
its mask / trimap / segmentation marks exactly those pixels, so after any crop, pad,
resize or flip the item's mask must coincide with the object's colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

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
