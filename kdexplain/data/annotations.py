"""Reading annotation files of the real datasets: Pascal-VOC-style XML, and shared helpers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdexplain.utils import derive_seed


@dataclass(frozen=True)
class XMLObject:
    """One object of a VOC-style annotation.

    ``box`` is ``x0, y0, x1, y1`` in 0-based pixel-edge coordinates (the object covers
    columns ``x0..x1-1``), whatever the file's convention.
    """

    name: str
    box: tuple[float, float, float, float]
    difficult: bool
    truncated: bool


@dataclass(frozen=True)
class XMLAnnotation:
    filename: str
    width: int | None
    height: int | None
    objects: tuple[XMLObject, ...]


def expect_file(path: Path, what: str, how: str) -> Path:
    """Raise ``FileNotFoundError`` naming ``path`` and how to get the data if it is missing."""
    if not path.exists():
        raise FileNotFoundError(f"expected {what} {path}, which does not exist. {how}")
    return path


def parse_voc_xml(path: str | Path, one_based: bool = True) -> XMLAnnotation:
    """Parse a Pascal-VOC-style XML annotation (VOC, ILSVRC DET / CLS-LOC).

    Parameters
    ----------
    path : path
        The XML file.
    one_based : bool
        True for Pascal VOC (``xmin = 1`` is the first pixel column); False for ILSVRC
        (0-based). ``xmax`` / ``ymax`` are inclusive in both.

    Raises
    ------
    ValueError
        The file is not well-formed XML or an object lacks its name or box (names the file).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"malformed XML annotation {path}: {e}") from e
    off = 1.0 if one_based else 0.0
    size = root.find("size")

    def _int(node, tag):
        el = node.find(tag) if node is not None else None
        try:
            return int(float(el.text)) if el is not None and el.text else None
        except ValueError:
            return None

    objects = []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        try:
            x0, y0, x1, y1 = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"object {k} of {path} has no valid <bndbox> "
                             f"(xmin, ymin, xmax, ymax)") from e
        if not name:
            raise ValueError(f"object {k} of {path} has no <name>")
        objects.append(XMLObject(name, (x0 - off, y0 - off, x1 - off + 1, y1 - off + 1),
                                 obj.findtext("difficult", "0").strip() == "1",
                                 obj.findtext("truncated", "0").strip() == "1"))
    return XMLAnnotation(root.findtext("filename", "").strip(), _int(size, "width"),
                         _int(size, "height"), tuple(objects))


def read_table(path: Path, columns: int, how: str) -> list[list[str]]:
    """Read a whitespace-separated text table (CUB's ``images.txt`` and friends).

    Every non-empty line must have at least ``columns`` fields; the last field takes the
    rest of the line. A malformed line raises ``ValueError`` naming the file and line.
    """
    expect_file(path, "the file", how)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=columns - 1)
        if len(parts) < columns:
            raise ValueError(f"malformed line {n} of {path}: {line!r} (expected {columns} "
                             f"fields). {how}")
        rows.append(parts)
    return rows


def holdout(keys: list[str], labels: list[int], fraction: float, seed: int = 0) -> np.ndarray:
    """Choose a stratified, deterministic validation subset of a training list.

    Within each class, samples are ordered by ``derive_seed(seed, "val", key)`` and the
    first ``round(fraction * n_class)`` are held out. The choice depends only on the keys,
    never on file order.

    Returns
    -------
    bool ndarray (N,)
        True for the held-out samples.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    out = np.zeros(len(keys), dtype=bool)
    labels_arr = np.asarray(labels)
    for c in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == c)
        order = sorted(idx, key=lambda i: derive_seed(seed, "val", keys[i]))
        out[order[:round(fraction * len(idx))]] = True
    return out


def select_split(split: str, keys: list[str], labels: list[int], is_train: list[bool],
                 val_fraction: float, seed: int, dataset: str) -> np.ndarray:
    """Rows of a dataset with official train/test lists that belong to ``split``.

    ``trainval`` = the official training list, ``train`` = it without the held-out
    ``val`` (:func:`holdout`), ``test`` = the official test list.
    """
    is_train = np.asarray(is_train, dtype=bool)
    if split == "test":
        return ~is_train
    if split == "trainval":
        return is_train
    if split not in ("train", "val"):
        raise ValueError(f"{dataset} has the splits train, val, trainval and test, not {split!r}")
    train_idx = np.flatnonzero(is_train)
    held = holdout([keys[i] for i in train_idx], [labels[i] for i in train_idx], val_fraction,
                   seed)
    out = np.zeros(len(keys), dtype=bool)
    out[train_idx[held if split == "val" else ~held]] = True
    return out
