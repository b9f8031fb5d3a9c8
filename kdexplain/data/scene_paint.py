"""The paint of a ``scenes`` image: background photos, textures, the animal silhouettes and
the primitives that warp and colour them (the composition is
:func:`kdexplain.data.scenes.render_scene`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from kdexplain.data.animals import ANIMAL_CLASSES, load_animal_silhouettes

__all__ = ["BACKGROUND_FAMILIES", "TEXTURES", "Silhouettes", "background", "blob_mask",
           "colour_texture", "pixel_grid", "silhouettes", "warp"]

BACKGROUND_FAMILIES: tuple[str, ...] = (
    "astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "motorcycle", "china", "flower", "camera",
)
TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel", "stripes", "checker", "dots",
                             "clouds", "rings")
_REAL_TEXTURES = ("brick", "grass", "gravel")


# ----------------------------------------------------------------------------- resources

@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """The background photos, one per family, uint8 (h, w, 3), cut to their usable part."""
    import skimage.data as skd
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    by_name = dict(zip([Path(f).stem for f in samples.filenames], samples.images, strict=True))
    out = []
    for name in BACKGROUND_FAMILIES:
        if name == "motorcycle":
            arr = skd.stereo_motorcycle()[0]
        elif name in by_name:
            arr = by_name[name]
        else:
            arr = getattr(skd, name)()
        if name == "retina":  # a fundus photo: keep the inside of the eye, not the black frame
            h, w = arr.shape[:2]
            arr = arr[int(0.22 * h):int(0.78 * h), int(0.22 * w):int(0.78 * w)]
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(arr[..., :3], dtype=np.uint8))
    return tuple(out)


@lru_cache(maxsize=1)
def _photo_images() -> tuple[Image.Image, ...]:
    return tuple(Image.fromarray(a) for a in _photos())


@lru_cache(maxsize=1)
def _real_textures() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-image's grey textures in [0, 1], at full and half resolution."""
    import skimage.data as skd

    out = {}
    for name in _REAL_TEXTURES:
        full = getattr(skd, name)().astype(np.float32) / 255.0
        half = full.reshape(full.shape[0] // 2, 2, full.shape[1] // 2, 2).mean(axis=(1, 3))
        out[name] = (full, half)
    return out


class Silhouettes:
    """Filled silhouette masks, shading and bounding boxes, computed once per silhouette."""

    def __init__(self):
        self.images, self.labels = load_animal_silhouettes()
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]] = {}
        self.by_class = [np.flatnonzero(self.labels == c) for c in range(len(ANIMAL_CLASSES))]

    def get(self, idx: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
        """(filled mask float32 (28, 28), shade float32 (28, 28), (center row, col, extent))."""
        hit = self._cache.get(idx)
        if hit is None:
            raw = self.images[idx]
            filled = ndimage.binary_fill_holes(raw > 0)
            rows, cols = np.nonzero(filled)
            if rows.size == 0:  # pragma: no cover - no empty silhouette in the data
                rows, cols = np.array([13, 14]), np.array([13, 14])
            r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            geom = ((r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2, float(max(r1 - r0, c1 - c0)))
            hit = (filled.astype(np.float32), raw.astype(np.float32) / 255.0, geom)
            self._cache[idx] = hit
        return hit


@lru_cache(maxsize=1)
def silhouettes() -> Silhouettes:
    return Silhouettes()


@lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
    return rr, cc


# ----------------------------------------------------------------------------- painting

def warp(src: Sequence[np.ndarray], geom: tuple[float, float, float], size: int,
          center: tuple[float, float], extent: float, angle: float, flip: bool
          ) -> list[np.ndarray]:
    """Bilinear affine warp of 28x28 arrays into a (size, size) canvas.

    The source's bounding box centre goes to ``center`` (row, col), its longer side
    becomes ``extent`` pixels, rotated by ``angle`` radians and mirrored if ``flip``.
    """
    rr, cc = pixel_grid(size)
    scale = extent / geom[2]
    dr, dc = rr - center[0], cc - center[1]
    cos, sin = math.cos(angle), math.sin(angle)
    # inverse map: output offset -> rotate back -> unscale -> unflip
    sr = (cos * dr - sin * dc) / scale
    sc = (sin * dr + cos * dc) / scale
    if flip:
        sc = -sc
    coords = np.stack([sr + geom[0], sc + geom[1]])
    return [ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0,
                                    prefilter=False) for a in src]


def _texture(rng: np.random.Generator, size: int, kind: str | None = None) -> np.ndarray:
    """A grey texture in [0, 1], shape (size, size)."""
    kind = kind or TEXTURES[rng.integers(len(TEXTURES))]
    rr, cc = pixel_grid(size)
    if kind in _REAL_TEXTURES:
        full, half = _real_textures()[kind]
        base = full if rng.random() < 0.5 else half
        h, w = base.shape
        r0, c0 = rng.integers(h), rng.integers(w)
        t = base.take(np.arange(r0, r0 + size) % h, axis=0).take(np.arange(c0, c0 + size) % w,
                                                                  axis=1)
        t = np.rot90(t, rng.integers(4))
        lo, hi = np.percentile(t, (2, 98))
        return np.clip((t - lo) / max(hi - lo, 1e-3), 0.0, 1.0)
    phi = rng.uniform(0, math.pi)
    u = (cc * math.cos(phi) + rr * math.sin(phi)) / size
    v = (-cc * math.sin(phi) + rr * math.cos(phi)) / size
    if kind == "stripes":
        t = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(3, 9) * u + rng.uniform(0, 6.3))
    elif kind == "checker":
        k = rng.uniform(4, 10)
        t = ((np.floor(u * k) + np.floor(v * k)) % 2).astype(np.float32)
    elif kind == "dots":
        f = rng.uniform(4, 9)
        t = (np.sin(2 * math.pi * f * u) * np.sin(2 * math.pi * f * v) > 0.3).astype(np.float32)
    elif kind == "rings":
        r = np.hypot(rr - rng.uniform(0, size), cc - rng.uniform(0, size)) / size
        t = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(4, 10) * r)
    elif kind == "clouds":
        k = int(rng.integers(3, 7))
        low = rng.random((k, k)).astype(np.float32)
        t = ndimage.zoom(low, size / k, order=1, mode="nearest", grid_mode=True)[:size, :size]
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-3)
    else:  # pragma: no cover - TEXTURES is closed
        raise ValueError(f"unknown texture {kind!r}")
    grain = rng.normal(0.0, 0.06, size=(size, size)).astype(np.float32)
    return np.clip(t.astype(np.float32) + grain, 0.0, 1.0)


def colour_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A texture mapped between two random colours: float32 (size, size, 3) in [0, 1]."""
    t = _texture(rng, size)
    c1 = rng.random(3).astype(np.float32)
    c2 = rng.random(3).astype(np.float32)
    while np.linalg.norm(c1 - c2) < 0.45:
        c2 = rng.random(3).astype(np.float32)
    return c1 + (c2 - c1) * t[..., None]


def background(rng: np.random.Generator, family: int, size: int) -> np.ndarray:
    """A random crop of a family's photo, resized to (size, size, 3), float32 in [0, 1]."""
    im = _photo_images()[family]
    w, h = im.size
    side = rng.uniform(0.3, 0.75) * min(w, h)
    x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    crop = im.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    arr = np.asarray(crop, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    return np.clip(arr * rng.uniform(0.8, 1.2), 0.0, 1.0)


def blob_mask(rng: np.random.Generator, size: int, center: tuple[float, float],
               radius: float) -> np.ndarray:
    """An irregular blob (a wobbly ellipse), bool (size, size)."""
    rr, cc = pixel_grid(size)
    dr, dc = rr - center[0], cc - center[1]
    a = rng.uniform(0, math.pi)
    u = (dc * math.cos(a) + dr * math.sin(a)) / radius
    v = (-dc * math.sin(a) + dr * math.cos(a)) / (radius * rng.uniform(0.45, 1.0))
    theta = np.arctan2(v, u)
    wobble = 1.0 + 0.25 * np.sin(int(rng.integers(2, 6)) * theta + rng.uniform(0, 6.3))
    return np.hypot(u, v) <= wobble
