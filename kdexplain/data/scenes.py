"""``scenes``: the built-in offline dataset of composited scenes with exact foreground masks.

Each image shows one animal silhouette of the ``animal-mnist`` package (the class), filled
with a real (scikit-image brick, grass, gravel) or procedural texture in random colours,
placed with a random affine transform (scale, rotation, flip, translation) on a background
cropped from a real photo (scikit-image and scikit-learn's bundled photos), with one to
three distractors behind it (textured blobs and fragments of other animals' silhouettes,
which are *not* foreground). The foreground mask is exactly the pixels painted by the
animal; the object box is the mask's bounding box.

``spurious_background=p`` ties the background to the class: with probability p the photo
of an image is family ``c mod F`` for class position ``c`` (F = 10 photo families), otherwise a
uniformly random family. A network trained with p > 0 can use the background to classify,
which the concept counts should reveal (more background concepts).

Generation is deterministic: image ``i`` of a split depends only on
``derive_seed(seed, "scenes", split, i)``, its class is ``classes[i % C]`` and its
silhouette comes from the split's own pool of silhouettes (per class: train the first 800,
val the next 100, test the last 100, shuffled by the seed), so a larger build extends a
smaller one and the splits never share a silhouette. Images are generated at
``image_size`` directly and stored as uint8 in a cache file (one per split and
configuration, named by a hash of it), written atomically and reused afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdexplain.data.animals import ANIMAL_CLASSES
from kdexplain.data.base import ImageOptions, MaskedImageDataset, RawSample
from kdexplain.data.scene_paint import (
    BACKGROUND_FAMILIES,
    background,
    blob_mask,
    colour_texture,
    pixel_grid,
    silhouettes,
    warp,
)
from kdexplain.utils import atomic_write_bytes, derive_seed, progress

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
# Per class, the animal-mnist silhouettes (in file order) each split draws from.
SPLIT_POOLS = {"train": (0, 800), "val": (800, 900), "test": (900, 1000)}


def default_data_root() -> Path:
    """The default data / cache root: ``$KDEXPLAIN_DATA_ROOT``, else ``./data/cache``."""
    return Path(os.environ.get("KDEXPLAIN_DATA_ROOT") or Path("data") / "cache")


@dataclass(frozen=True)
class ScenesConfig:
    """Everything that determines the pixels of one split of ``scenes`` (the cache key).

    Attributes
    ----------
    split : {"train", "val", "test"}
    image_size : int
        Side of the square images (pixels).
    images_per_class : int
        Images of each class in this split.
    seed : int
    spurious_background : float
        Probability p that an image's background family is tied to its class.
    classes : tuple of str
        The animal classes used, in label order.
    """

    split: str
    image_size: int
    images_per_class: int
    seed: int
    spurious_background: float
    classes: tuple[str, ...]
    version: int = GENERATOR_VERSION

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"scenes has the splits {', '.join(SPLITS)}, not {self.split!r}")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024 pixels, got "
                             f"{self.image_size}")
        if self.images_per_class < 1:
            raise ValueError(f"images_per_class must be at least 1, got {self.images_per_class}")
        if not 0.0 <= self.spurious_background <= 1.0:
            raise ValueError(f"spurious_background is a probability in [0, 1], got "
                             f"{self.spurious_background}")
        unknown = [c for c in self.classes if c not in ANIMAL_CLASSES]
        if unknown or not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct names among {', '.join(ANIMAL_CLASSES)}; "
                             f"got {list(self.classes)}")

    @property
    def num_images(self) -> int:
        return self.images_per_class * len(self.classes)

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.blake2b(blob, digest_size=6).hexdigest()

    def file_name(self) -> str:
        return (f"scenes-{self.split}-{self.image_size}px-{self.images_per_class}pc-"
                f"seed{self.seed}-{self.digest()}.npz")


def render_scene(cfg: ScenesConfig, index: int, silhouette: int, class_pos: int
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Paint image ``index`` of a split.

    Parameters
    ----------
    cfg : ScenesConfig
    index : int
        Position in the split (its random stream is ``derive_seed(seed, "scenes", split, i)``).
    silhouette : int
        Index of the animal-mnist silhouette to paint.
    class_pos : int
        The label (position in ``cfg.classes``); decides the tied background family.

    Returns
    -------
    image : uint8 ndarray (S, S, 3)
    mask : bool ndarray (S, S)
        Exactly the pixels painted by the animal.
    family : int
        The background family (index into :data:`BACKGROUND_FAMILIES`).
    """
    size = cfg.image_size
    rng = np.random.default_rng(derive_seed(cfg.seed, "scenes", cfg.split, index))
    sil = silhouettes()
    n_fam = len(BACKGROUND_FAMILIES)
    tied = rng.random() < cfg.spurious_background
    family = class_pos % n_fam if tied else int(rng.integers(n_fam))
    canvas = background(rng, family, size)

    # distractors behind the object: blobs and fragments of other animals, not foreground
    lo, hi = SPLIT_POOLS[cfg.split]
    own = ANIMAL_CLASSES.index(cfg.classes[class_pos])
    for _ in range(int(rng.integers(1, 4))):
        centre = (rng.uniform(0.05, 0.95) * size, rng.uniform(0.05, 0.95) * size)
        if rng.random() < 0.5:
            shape = blob_mask(rng, size, centre, rng.uniform(0.06, 0.15) * size)
            shade = None
        else:
            other = int(rng.choice([c for c in range(len(ANIMAL_CLASSES)) if c != own]))
            idx = int(sil.by_class[other][rng.integers(lo, hi)])
            filled, shade_src, geom = sil.get(idx)
            cut, shade = warp([filled, shade_src], geom, size, centre,
                               rng.uniform(0.25, 0.45) * size, rng.uniform(-math.pi, math.pi),
                               bool(rng.random() < 0.5))
            rr, cc = pixel_grid(size)
            a = rng.uniform(0, 2 * math.pi)  # keep one side of a line through the centre
            side = (cc - centre[1]) * math.cos(a) + (rr - centre[0]) * math.sin(a)
            shape = (cut > 0.5) & (side > rng.uniform(-0.05, 0.1) * size)
        paint = colour_texture(rng, size)
        if shade is not None:
            paint = paint * (0.4 + 0.6 * shade[..., None])
        canvas[shape] = paint[shape]

    # the object
    filled, shade_src, geom = sil.get(silhouette)
    extent = rng.uniform(0.55, 0.85) * size
    slack = max(0.0, (size - extent) / 2) * 0.9
    centre = (size / 2 + rng.uniform(-slack, slack), size / 2 + rng.uniform(-slack, slack))
    cover, shade = warp([filled, shade_src], geom, size, centre, extent,
                         math.radians(rng.uniform(-20, 20)), bool(rng.random() < 0.5))
    mask = cover > 0.5
    paint = colour_texture(rng, size) * (0.35 + 0.65 * shade[..., None])
    canvas[mask] = paint[mask]
    image = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
    return image, mask, family


def split_silhouettes(cfg: ScenesConfig) -> tuple[np.ndarray, np.ndarray]:
    """The label and the silhouette of every image of a split.

    Returns
    -------
    labels : int64 ndarray (N,)
        ``i % C``: classes interleave, so any prefix of a split is balanced.
    silhouettes : int64 ndarray (N,)
        Index into the animal-mnist arrays.
    """
    sil = silhouettes()
    lo, hi = SPLIT_POOLS[cfg.split]
    n_cls = len(cfg.classes)
    labels = np.arange(cfg.num_images, dtype=np.int64) % n_cls
    rank = np.arange(cfg.num_images) // n_cls
    out = np.empty(cfg.num_images, dtype=np.int64)
    for pos, name in enumerate(cfg.classes):
        c = ANIMAL_CLASSES.index(name)
        pool = sil.by_class[c][lo:hi]
        perm = np.random.default_rng(derive_seed(cfg.seed, "scenes-pool", cfg.split, c))
        pool = pool[perm.permutation(len(pool))]
        sel = labels == pos
        out[sel] = pool[rank[sel] % len(pool)]
    return labels, out


def _render_range(cfg: ScenesConfig, start: int, stop: int, sils: np.ndarray,
                  labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``start`` to ``stop - 1`` of a split (each from its own random stream)."""
    n, s = stop - start, cfg.image_size
    images = np.empty((n, s, s, 3), dtype=np.uint8)
    masks = np.empty((n, s, s), dtype=bool)
    families = np.empty(n, dtype=np.int64)
    for k, i in enumerate(range(start, stop)):
        images[k], masks[k], families[k] = render_scene(cfg, i, int(sils[i]), int(labels[i]))
    return images, masks, families


#: splits at least this large are rendered by several processes (the same images)
PARALLEL_FROM = 4000


def generate_split(cfg: ScenesConfig, show_progress: bool | None = None,
                   workers: int | None = None) -> dict[str, np.ndarray]:
    """Generate every image of one split (no cache).

    Every image has its own random stream, so the split is the same however many processes
    render it. ``workers`` (default: the CPU count, at most 8, for splits of at least
    :data:`PARALLEL_FROM` images; else 1) processes render chunks of it.

    Returns
    -------
    dict
        ``images`` uint8 (N, S, S, 3), ``masks`` bool (N, S, S), ``labels`` int64 (N,),
        ``families`` int64 (N,), ``silhouettes`` int64 (N,).
    """
    labels, sils = split_silhouettes(cfg)
    n = cfg.num_images
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if n >= PARALLEL_FROM else 1
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():  # the workers need no import of __main__
        workers = 1
    chunk = min(500, max(32, -(-n // (4 * workers)))) if workers > 1 else n
    bounds = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    bar = progress(total=n, desc=f"scenes {cfg.split}", enable=show_progress, unit="img")
    parts = []
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            futures = [pool.submit(_render_range, cfg, a, b, sils, labels) for a, b in bounds]
            for future, (a, b) in zip(futures, bounds, strict=True):
                parts.append(future.result())
                bar.update(b - a)
    else:
        for a, b in bounds:
            parts.append(_render_range(cfg, a, b, sils, labels))
            bar.update(b - a)
    bar.close()
    images, masks, families = (np.concatenate([p[j] for p in parts]) for j in range(3))
    return {"images": images, "masks": masks, "labels": labels, "families": families,
            "silhouettes": sils}


def _load_cache(path: Path, cfg: ScenesConfig) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["config"]))
            arrays = {k: z[k] for k in ("images", "masks", "labels", "families", "silhouettes")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # unreadable (truncated, corrupt): rebuilt (atomically) by the caller
    if stored != json.loads(json.dumps(asdict(cfg))) or len(arrays["labels"]) != cfg.num_images:
        return None
    return arrays


def build_split(cfg: ScenesConfig, cache_dir: str | Path | None = None, *,
                rebuild: bool = False, show_progress: bool | None = None
                ) -> tuple[dict[str, np.ndarray], Path, bool]:
    """Load one split of ``scenes`` from its cache file, generating it first if needed.

    Parameters
    ----------
    cfg : ScenesConfig
    cache_dir : path or None
        Folder of the cache files; None = ``default_data_root() / "scenes"``.
    rebuild : bool
        Generate and overwrite even if the cache file exists.

    Returns
    -------
    arrays : dict
        As :func:`generate_split`.
    path : Path
        The cache file.
    built : bool
        Whether it was generated now (False: read from the cache).
    """
    folder = Path(cache_dir) if cache_dir is not None else default_data_root() / "scenes"
    path = folder / cfg.file_name()
    if path.is_file() and not rebuild:
        arrays = _load_cache(path, cfg)
        if arrays is not None:
            return arrays, path, False
    arrays = generate_split(cfg, show_progress=show_progress)
    buf = io.BytesIO()
    np.savez(buf, config=np.array(json.dumps(asdict(cfg), sort_keys=True)), **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise OSError(f"cannot write the scenes cache file {path} ({e}); pass a writable "
                      f"cache_dir or set KDEXPLAIN_DATA_ROOT") from e
    return arrays, path, True


def build_scenes(image_size: int = 64, images_per_class: int = 100,
                 val_per_class: int | None = None, test_per_class: int | None = None,
                 seed: int = 0, spurious_background: float = 0.0,
                 classes: Sequence[str] | None = None, cache_dir: str | Path | None = None,
                 rebuild: bool = False, show_progress: bool | None = None) -> list[dict]:
    """Build (or find) the cache files of all three splits.

    Returns
    -------
    list of dict
        Per split: ``split``, ``path``, ``images``, ``built`` (generated now or cached),
        ``seconds``.
    """
    counts = _split_counts(images_per_class, val_per_class, test_per_class)
    report = []
    for split in SPLITS:
        cfg = ScenesConfig(split, int(image_size), counts[split], int(seed),
                           float(spurious_background), tuple(classes or ANIMAL_CLASSES))
        t0 = time.perf_counter()
        _, path, built = build_split(cfg, cache_dir, rebuild=rebuild, show_progress=show_progress)
        report.append({"split": split, "path": str(path), "images": cfg.num_images,
                       "built": built, "seconds": round(time.perf_counter() - t0, 3)})
    return report


def _split_counts(images_per_class: int, val_per_class: int | None,
                  test_per_class: int | None) -> dict[str, int]:
    default_eval = max(1, int(images_per_class) // 5)
    return {"train": int(images_per_class),
            "val": int(val_per_class) if val_per_class is not None else default_eval,
            "test": int(test_per_class) if test_per_class is not None else default_eval}


class ScenesDataset(MaskedImageDataset):
    """The built-in composited scenes (see the module docstring).

    Parameters
    ----------
    split : {"train", "val", "test"}
    root : path or None
        Data root; the cache lives in ``root / "scenes"``. None = :func:`default_data_root`.
    image_size : int
        Side of the square images; they are generated at this size (default 64).
    images_per_class : int
        Training images per class (default 100).
    val_per_class, test_per_class : int or None
        Validation / test images per class; None = ``max(1, images_per_class // 5)``.
    seed : int
        Generation seed (default 0).
    spurious_background : float
        Probability p of tying an image's background family to its class (default 0).
    classes : sequence of str, comma-separated str, or None
        A subset of :data:`ANIMAL_CLASSES`, in label order; None = all ten.
    cache_dir : path or None
        Folder of the cache files (overrides ``root``).
    cache : bool
        False: generate in memory and write no file.
    rebuild : bool
        Regenerate even if a cache file exists.
    image : ImageOptions or mapping, optional
        The image options (crop, aspect, augmentation, normalisation, file checks; see
        :class:`~kdexplain.data.base.ImageOptions`), over :attr:`image_defaults` (``verify``: "none", there are no files
        to check).

    Attributes
    ----------
    backgrounds : LongTensor (N,)
        Background family of every image (index into ``background_names``).
    background_names : list of str
    silhouettes : LongTensor (N,)
        The animal-mnist silhouette of every image.
    cache_path : Path or None
    config : ScenesConfig
    """

    name = "scenes"
    image_defaults = ImageOptions(verify="none")

    def __init__(self, split: str = "train", root: str | Path | None = None,
                 image_size: int = 64, *, images_per_class: int = 100,
                 val_per_class: int | None = None, test_per_class: int | None = None,
                 seed: int = 0, spurious_background: float = 0.0,
                 classes: Sequence[str] | None = None, cache_dir: str | Path | None = None,
                 cache: bool = True, rebuild: bool = False, show_progress: bool | None = None,
                 image: ImageOptions | Mapping[str, Any] | None = None):
        super().__init__(image_size, image)
        if split not in SPLITS:
            raise ValueError(f"scenes has the splits {', '.join(SPLITS)}, not {split!r}")
        counts = _split_counts(images_per_class, val_per_class, test_per_class)
        if isinstance(classes, str):  # "bear,cow" from a command line or config
            classes = [c.strip() for c in classes.split(",") if c.strip()]
        self.config = ScenesConfig(split, int(image_size), counts[split], int(seed),
                                   float(spurious_background),
                                   tuple(classes) if classes else ANIMAL_CLASSES)
        if cache:
            if cache_dir is None and root is not None:
                cache_dir = Path(root) / "scenes"
            arrays, self.cache_path, _ = build_split(self.config, cache_dir, rebuild=rebuild,
                                                     show_progress=show_progress)
        else:
            arrays, self.cache_path = generate_split(self.config, show_progress), None
        self.split = split
        self.class_names = list(self.config.classes)
        self._images = arrays["images"]
        self._masks = arrays["masks"]
        self._labels = arrays["labels"]
        self.backgrounds = torch.from_numpy(np.asarray(arrays["families"], dtype=np.int64))
        self.silhouettes = torch.from_numpy(np.asarray(arrays["silhouettes"], dtype=np.int64))
        self.background_names = list(BACKGROUND_FAMILIES)

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> list[int]:
        return [int(v) for v in self._labels]

    def raw_sample(self, index: int) -> RawSample:
        image = torch.from_numpy(np.ascontiguousarray(self._images[index])).permute(2, 0, 1)
        mask = torch.from_numpy(np.ascontiguousarray(self._masks[index]))
        return RawSample(image, mask, None, int(self._labels[index]),
                         f"scenes/{self.split}/{index:06d}")

    def uint8_images(self) -> np.ndarray:
        """All images as stored: uint8 (N, S, S, 3), read-only view."""
        view = self._images.view()
        view.setflags(write=False)
        return view

    def masks(self) -> np.ndarray:
        """All foreground masks as stored: bool (N, S, S), read-only view."""
        view = self._masks.view()
        view.setflags(write=False)
        return view
