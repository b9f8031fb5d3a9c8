"""The dataset base class shared by every dataset of this room, and image file helpers.

An item is a dict::

    {"image": FloatTensor (3, S, S)  normalised (ImageNet mean/std) unless normalize=False,
     "label": int                    class index (-1 = unlabelled, folder datasets only),
     "mask":  BoolTensor (S, S)      foreground,
     "box":   FloatTensor (4,)       object box x0, y0, x1, y1 in pixel-edge coordinates,
     "index": int                    position in the dataset,
     "key":   str                    stable unique id of the sample}

``torch.utils.data.default_collate`` stacks such dicts (tensors stacked, ints to a
LongTensor, strings to a list); :func:`collate` does the same with a clearer error.

Corrupt images: a file that cannot be read is reported with its path (a
:class:`CorruptImageWarning`), recorded in ``dataset.skipped`` and skipped; nothing else
is lost. Files are checked when the dataset is built (``verify="header"``, the default,
reads every header; ``"full"`` decodes every file; ``"none"`` checks nothing). A file
that only fails when it is decoded later raises :class:`CorruptImageError` from
``ds[i]``; it is never replaced by another sample. :func:`readable_items` reads a selection
of samples, leaving such files out with a warning that names them.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from kdexplain.data.transforms import JointPipeline

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
VERIFY_MODES = ("header", "full", "none")


class CorruptImageWarning(UserWarning):
    """A corrupt or unreadable image file was skipped."""


class CorruptImageError(OSError):
    """An image file that cannot be read; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class Skipped(NamedTuple):
    """A sample left out because one of its files is unreadable."""

    path: str
    reason: str


class RawSample(NamedTuple):
    """A sample before the joint transforms.

    ``image`` uint8 (3, H, W); ``mask`` bool (H, W); ``box`` (4,) x0, y0, x1, y1 or None
    (None = the mask's bounding box); ``label`` int; ``key`` str.
    """

    image: torch.Tensor
    mask: torch.Tensor
    box: torch.Tensor | None
    label: int
    key: str


def load_rgb(path: str | Path) -> torch.Tensor:
    """Read an image file as uint8 RGB, shape (3, H, W).

    A missing or unreadable file raises :class:`CorruptImageError` naming it.
    """
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I") or im.mode == "F":
                arr = _wide_grey_to_rgb(np.asarray(im), im.mode, path)
            else:
                arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError as e:
        raise CorruptImageError(path, "file does not exist") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptImageError(path, f"{type(e).__name__}: {e}") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _wide_grey_to_rgb(arr: np.ndarray, mode: str, path: str | Path) -> np.ndarray:
    """A 16-bit, 32-bit integer or float grey image (H, W) as uint8 RGB (H, W, 3), scaled by
    its bit depth (``Image.convert("RGB")`` would clip every value above 255 to white).

    16-bit modes (``I;16*``) and 32-bit integers within 0..65535 (how 16-bit files open as
    mode ``I``) are divided by 65535; floats must lie in [0, 1]. Anything else is refused
    (:class:`CorruptImageError`: the image is left out with a warning naming it).
    """
    arr = arr.astype(np.float64)
    if mode.startswith("I;16") or (mode == "I" and arr.min() >= 0 and arr.max() <= 65535):
        top = 65535.0
    elif mode == "F" and np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1:
        top = 1.0
    else:
        raise CorruptImageError(path, f"a mode-{mode} image with values in [{arr.min():g}, "
                                f"{arr.max():g}] has no known bit depth; save it as 8- or "
                                "16-bit")
    grey = np.rint(arr / top * 255.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def read_label_image(path: str | Path) -> tuple[np.ndarray, bool]:
    """Read a mask / label image as a single-channel array (H, W) and whether it was a
    palette image (whose values are indices, not intensities).

    Palette, grey, 1-bit, 16/32-bit integer and float images keep their values; colour
    images are converted to grey first. The one reader of every dataset's masks.
    """
    try:
        with Image.open(path) as im:
            palette = im.mode == "P"
            if im.mode not in ("P", "L", "1", "I", "I;16", "F"):
                im = im.convert("L")
            arr = np.asarray(im)
    except FileNotFoundError as e:
        raise CorruptImageError(path, "file does not exist") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImageError(path, f"{type(e).__name__}: {e}") from e
    if arr.ndim != 2:
        raise CorruptImageError(path, f"expected a single-channel mask, got shape {arr.shape}")
    return arr, palette


def load_label_png(path: str | Path) -> np.ndarray:
    """Read a mask / label PNG as an integer array (H, W) (:func:`read_label_image`).

    Palette images (VOC class maps, Pet trimaps) give their indices; RGB images are
    converted to grey first.
    """
    return read_label_image(path)[0]


def check_mask_shape(mask: np.ndarray, image: torch.Tensor, mask_path: str | Path,
                     image_path: str | Path) -> None:
    """Raise :class:`CorruptImageError` (the sample is skipped) if a mask does not match its
    image; the message names both files and both shapes."""
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise CorruptImageError(mask_path, f"mask of shape {tuple(mask.shape)} does not match "
                                f"its image {image_path} of shape {tuple(image.shape[-2:])}")


def check_image_file(path: str | Path, mode: str = "header") -> str | None:
    """Check that an image file can be read. Returns None if it can, else the reason."""
    if mode == "none":
        return None
    try:
        with Image.open(path) as im:
            if mode == "full":
                im.load()
            else:
                im.verify()
    except FileNotFoundError:
        return "file does not exist"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def collate(items: Sequence[dict]) -> dict:
    """Stack a list of items into a batch (``default_collate`` with a clearer error).

    Returns
    -------
    dict
        ``image`` (B, 3, S, S), ``mask`` (B, S, S), ``box`` (B, 4), ``label`` and ``index``
        LongTensor (B,), ``key`` list of B strings.
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    keys = set(items[0])
    for it in items[1:]:
        if set(it) != keys:
            raise ValueError(f"items have different fields: {sorted(keys)} vs {sorted(it)}")
    for name in ("image", "mask"):
        if name in keys:
            shapes = {tuple(it[name].shape) for it in items}
            if len(shapes) > 1:
                raise ValueError(f"cannot stack {name}s of different shapes {sorted(shapes)}; "
                                 "build the dataset with one image_size")
    return default_collate(list(items))


@dataclass(frozen=True)
class ImageOptions:
    """How a dataset reads its files and turns a sample into tensors: the options every
    dataset class shares (in a config they are plain keys of ``data.options``).

    Attributes
    ----------
    crop_scale : float or None
        Crop to ``crop_scale`` times the object box around its centre before resizing
        (1.0 = tight, 1.2 = the paper's VOC / ILSVRC crops); None keeps the whole image.
    keep_aspect : bool
        Without ``augment``: resize the shorter side and crop the central square (True), or
        squash the image to a square (False).
    augment : bool
        Random resized crop and horizontal flip instead of the plain resize (training only).
    transform : callable or None
        An extra ``torchvision.transforms.v2`` transform of image, mask and box together
        (see :class:`~kdexplain.data.transforms.JointPipeline`).
    normalize : bool
        ImageNet mean/std (True) or values in [0, 1] (False).
    verify : {"header", "full", "none"}
        How files are checked when the dataset is built: every header, every file decoded,
        or nothing.
    """

    crop_scale: float | None = None
    keep_aspect: bool = False
    augment: bool = False
    transform: Callable | None = None
    normalize: bool = True
    verify: str = "header"

    def __post_init__(self) -> None:
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}, "
                             f"got {self.verify!r}")

    def updated(self, image: ImageOptions | Mapping[str, Any] | None) -> ImageOptions:
        """``image`` when it is an :class:`ImageOptions`; else these options with the
        values of the mapping ``image`` (None: unchanged)."""
        if isinstance(image, ImageOptions):
            return image
        values = dict(image or {})
        unknown = sorted(set(values) - set(IMAGE_OPTION_NAMES))
        if unknown:
            raise ValueError(f"unknown image option(s) {', '.join(unknown)}; the image options "
                             f"are {', '.join(IMAGE_OPTION_NAMES)}")
        return dataclasses.replace(self, **values)


#: The names of the :class:`ImageOptions` (keys of a config's ``data.options``).
IMAGE_OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ImageOptions))


class MaskedImageDataset(Dataset):
    """Base class: images with a foreground mask, an object box and a label.

    Subclasses set ``class_names`` and implement ``__len__``, :meth:`labels` and
    :meth:`raw_sample` (datasets listed as file records get the first two from
    :class:`RecordDataset`); this class applies the joint transforms and handles unreadable
    files.

    Every dataset class takes ``image``: an :class:`ImageOptions`, or a mapping of some of
    them applied over the class's :attr:`image_defaults` (e.g. ``{"augment": True}``).

    Attributes
    ----------
    num_classes : int
    class_names : list of str
    image_size : int
        Side of the square output images (pixels).
    image : ImageOptions
        The image options in use.
    skipped : list of Skipped
        Samples left out because a file could not be read (path and reason).
    """

    name: str = "dataset"
    #: The image options of this dataset class where ``image`` does not set them.
    image_defaults: ClassVar[ImageOptions] = ImageOptions()

    def __init__(self, image_size: int, image: ImageOptions | Mapping[str, Any] | None = None):
        self.image = self.image_defaults.updated(image)
        self.image_size = int(image_size)
        self.pipeline = JointPipeline(self.image_size, crop_scale=self.image.crop_scale,
                                      augment=self.image.augment,
                                      transform=self.image.transform,
                                      normalize=self.image.normalize,
                                      keep_aspect=self.image.keep_aspect)
        self.verify = self.image.verify
        self.skipped: list[Skipped] = []
        self.class_names: list[str] = []

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw_sample(self, index: int) -> RawSample:  # pragma: no cover - abstract
        """The untransformed sample ``index``; raises :class:`CorruptImageError`."""
        raise NotImplementedError

    def labels(self) -> list[int]:
        """The label of every sample, in order, without reading any image."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append(Skipped(str(path), reason))
        warnings.warn(f"skipping corrupt image {path}: {reason}", CorruptImageWarning,
                      stacklevel=3)

    def _verified(self, records: list, paths: Callable[[object], Sequence[str | Path]]) -> list:
        """Keep the records whose files all pass :func:`check_image_file`.

        A file shared by several records (VOC objects of one image) is checked and
        reported once; all its records are left out.
        """
        if self.verify == "none":
            return records
        checked: dict[str, str | None] = {}
        kept = []
        for rec in records:
            ok = True
            for p in paths(rec):
                key = str(p)
                if key not in checked:
                    checked[key] = check_image_file(p, self.verify)
                    if checked[key] is not None:
                        self._skip(p, checked[key])
                ok = ok and checked[key] is None
            if ok:
                kept.append(rec)
        return kept

    def __getitem__(self, index: int) -> dict:
        """Sample ``index``; a file that fails to decode raises :class:`CorruptImageError`
        naming it (and is recorded in ``skipped``). It is never replaced by another sample:
        use :func:`readable_items` to read a selection and leave corrupt files out."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        try:
            raw = self.raw_sample(index)
        except CorruptImageError as e:
            if all(sk.path != str(e.path) for sk in self.skipped):  # reported once
                self.skipped.append(Skipped(str(e.path), e.reason))
            raise CorruptImageError(
                e.path, f"{e.reason} (sample {index} of the {self.name} dataset; build the "
                "dataset with verify='full' to leave such files out up front)") from None
        out = self.pipeline(raw.image, raw.mask, raw.box)
        return {"image": out["image"], "label": int(raw.label), "mask": out["mask"],
                "box": out["box"], "index": index, "key": raw.key}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={len(self)}, classes={self.num_classes}, "
                f"image_size={self.image_size}, skipped={len(self.skipped)})")


class RecordDataset(MaskedImageDataset):
    """A dataset listed as one record per sample (file paths, label, key), read lazily.

    Subclasses fill ``self._records`` in their ``__init__`` (usually through
    :meth:`_verified`) with named tuples that have a ``label`` field, and implement
    :meth:`raw_sample`; the length and the labels come from the records, so
    :meth:`labels` reads no image.
    """

    def __init__(self, image_size: int,
                 image: ImageOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(image_size, image)
        self._records: list = []

    def __len__(self) -> int:
        return len(self._records)

    def labels(self) -> list[int]:
        """The label of every sample, in order, without reading any image."""
        return [r.label for r in self._records]


def readable_items(dataset: Dataset, indices: Sequence[int], limit: int | None = None
                   ) -> list[dict]:
    """Read the samples ``indices`` of ``dataset`` in order, leaving corrupt files out.

    A file that fails to decode is reported (:class:`CorruptImageWarning`, and
    ``dataset.skipped`` where the dataset has it) and skipped; no sample is read twice or
    put in another's place.

    Parameters
    ----------
    dataset : Dataset
    indices : sequence of int
    limit : int, optional
        Stop after this many readable samples (e.g. "the first n images").

    Returns
    -------
    list of dict
        The items (``ds[i]``) of the readable samples, at most ``limit``.
    """
    items: list[dict] = []
    for i in indices:
        if limit is not None and len(items) >= limit:
            break
        try:
            items.append(dataset[i])
        except CorruptImageError as e:
            warnings.warn(f"skipping corrupt image {e.path}: {e.reason}", CorruptImageWarning,
                          stacklevel=2)
    return items
