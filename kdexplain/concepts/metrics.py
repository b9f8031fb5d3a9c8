"""Visual concepts and the per-image numbers of the three hypotheses (docs/method.md section 4).

Everything here works on plain numpy arrays of entropy grids, one model at a time:

- ``entropy`` : float array (M, N, g, g), the entropy ``H_i`` of every cell (nats per
  dimension, ``log sigma_i + 0.5 log(2 pi e)``) at M checkpoints (sorted by epoch) for N
  images. A whole (checkpoint, image) grid is NaN where that image had no usable signal at
  that checkpoint (``D0 == 0``).
- ``foreground`` : bool array (N, g, g), the images' object masks on the grid.

Paper symbols sit next to the readable names: ``H_bar`` = :func:`background_entropy`,
``b`` = ``concept_threshold``, ``N_fg`` / ``N_bg`` = :func:`count_concepts`, lambda =
:func:`foreground_ratio`, ``m^`` = :func:`peak_checkpoint`, ``d(m^)`` =
:func:`peak_distance`, ``D_mean`` / ``D_std`` = :func:`distance_spread`, ``rho`` =
:func:`stability`. The original protocol's image selection is :func:`effective_images`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from kdexplain.concepts.settings import DEFAULT_CONCEPT_THRESHOLD

__all__ = [
    "ModelConcepts",
    "background_entropy",
    "concept_cells",
    "count_concepts",
    "distance_spread",
    "effective_images",
    "foreground_ratio",
    "model_concepts",
    "peak_checkpoint",
    "peak_distance",
    "region_means",
    "stability",
    "usable_images",
]

BaselineMode = Literal["pooled", "per_image"]


def _check_grids(entropy: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    entropy = np.asarray(entropy, dtype=np.float64)
    foreground = np.asarray(foreground)
    if entropy.ndim != 4:
        raise ValueError(f"entropy must have shape (checkpoints, images, g, g), got "
                         f"{entropy.shape}")
    if foreground.shape != entropy.shape[1:]:
        raise ValueError(f"foreground has shape {foreground.shape} but the entropy grids are "
                         f"(images, g, g) = {entropy.shape[1:]}; give one mask per image on "
                         "the same grid")
    return entropy, foreground.astype(bool)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (..., N, g, g) over the cells where ``mask`` (N, g, g) is True.

    Returns (..., N); NaN where an image has no such cell or its grid is NaN.
    """
    n = mask.sum(axis=(-2, -1))
    total = np.where(mask, values, 0.0).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def region_means(entropy: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean foreground and mean background entropy of every (checkpoint, image).

    Parameters
    ----------
    entropy : array (M, N, g, g)
    foreground : bool array (N, g, g)

    Returns
    -------
    fg_mean, bg_mean : arrays (M, N)
        NaN where the image has no cell of that region or no usable signal.
    """
    entropy, foreground = _check_grids(entropy, foreground)
    return _masked_mean(entropy, foreground), _masked_mean(entropy, ~foreground)


def background_entropy(entropy: np.ndarray, foreground: np.ndarray,
                       mode: BaselineMode = "pooled") -> np.ndarray:
    """The baseline entropy ``H_bar`` of docs/method.md section 4, per checkpoint (and per image).

    Parameters
    ----------
    entropy : array (M, N, g, g)
        Cell entropies ``H_i`` in nats; NaN grids (no usable signal) are skipped.
    foreground : bool array (N, g, g)
        True on object cells; ``H_bar`` averages the other (background) cells.
    mode : {"pooled", "per_image"}
        ``"pooled"`` (the original): one value per checkpoint, the mean over the images of
        each image's mean background entropy -- every image counts equally, as in the
        authors' code, whatever its number of background cells. ``"per_image"``: each
        image's own mean background entropy; an image without background cells falls back
        to the pooled value.

    Returns
    -------
    array (M, N)
        ``H_bar`` for every (checkpoint, image) (the pooled value repeated over images in
        ``"pooled"`` mode). NaN where no image at that checkpoint has a background cell
        with a finite entropy.
    """
    entropy, foreground = _check_grids(entropy, foreground)
    if mode not in ("pooled", "per_image"):
        raise ValueError(f"baseline entropy mode must be 'pooled' or 'per_image', got {mode!r}")
    per_image = _masked_mean(entropy, ~foreground)  # (M, N)
    finite = np.isfinite(per_image)
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(count > 0, np.where(finite, per_image, 0.0).sum(axis=1)
                          / np.maximum(count, 1), np.nan)  # (M,)
    pooled = np.broadcast_to(pooled[:, None], per_image.shape)
    if mode == "pooled":
        return pooled.copy()
    return np.where(finite, per_image, pooled)


def concept_cells(entropy: np.ndarray, h_bar: np.ndarray,
                  threshold: float = DEFAULT_CONCEPT_THRESHOLD) -> np.ndarray:
    """Concept cells: ``H_bar - H_i > b`` (strict), docs/method.md section 4.

    Parameters
    ----------
    entropy : array (M, N, g, g)
    h_bar : array (M, N) or (M,)
        Baseline entropy from :func:`background_entropy`.
    threshold : float
        ``b``, the ``concept_threshold`` (0.2 in the paper), in nats.

    Returns
    -------
    bool array (M, N, g, g)
        False wherever the entropy or ``H_bar`` is NaN.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    h_bar = np.asarray(h_bar, dtype=np.float64)
    if h_bar.ndim == 1:
        h_bar = h_bar[:, None]
    with np.errstate(invalid="ignore"):
        return (h_bar[:, :, None, None] - entropy) > threshold


def count_concepts(concepts: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``N_fg`` and ``N_bg``: concept counts on foreground and background cells.

    Parameters
    ----------
    concepts : bool array (..., N, g, g)
    foreground : bool array (N, g, g)

    Returns
    -------
    n_fg, n_bg : int arrays (..., N)
    """
    concepts = np.asarray(concepts, dtype=bool)
    foreground = np.asarray(foreground, dtype=bool)
    n_fg = (concepts & foreground).sum(axis=(-2, -1))
    n_bg = (concepts & ~foreground).sum(axis=(-2, -1))
    return n_fg, n_bg


def foreground_ratio(n_fg: np.ndarray, n_bg: np.ndarray) -> np.ndarray:
    """Per image ``N_fg / (N_fg + N_bg)``, 0 where both are 0 (docs/method.md section 4).

    The model's ``fg_ratio`` (the paper's lambda) is the mean of this over images.
    """
    n_fg = np.asarray(n_fg, dtype=np.float64)
    total = n_fg + np.asarray(n_bg, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, n_fg / np.where(total > 0, total, 1.0), 0.0)


def peak_checkpoint(n_fg: np.ndarray) -> np.ndarray:
    """``m^``: per image, the index of the first checkpoint where ``N_fg`` is largest.

    Parameters
    ----------
    n_fg : array (M, N)

    Returns
    -------
    int array (N,)
        Index into the checkpoints; ties go to the earliest (so an image without any
        foreground concept peaks at the first checkpoint).
    """
    n_fg = np.asarray(n_fg)
    if n_fg.ndim != 2 or n_fg.shape[0] == 0:
        raise ValueError(f"n_fg must have shape (checkpoints >= 1, images), got {n_fg.shape}")
    return np.argmax(n_fg, axis=0)


def peak_distance(n_fg: np.ndarray, distance: np.ndarray, *,
                  without_concepts: Literal["first", "exclude"] = "first") -> np.ndarray:
    """``d(m^)``: the weight distance at each image's foreground-concept peak.

    Parameters
    ----------
    n_fg : array (M, N)
    distance : array (M,)
        Normalised weight distance ``d`` at each checkpoint (docs/method.md section 4).
    without_concepts : {"first", "exclude"}
        For an image with ``N_fg == 0`` at every checkpoint: ``"first"`` (the original's
        ``argmax``) takes the first checkpoint; ``"exclude"`` gives NaN.

    Returns
    -------
    float array (N,)
    """
    n_fg = np.asarray(n_fg)
    distance = np.asarray(distance, dtype=np.float64)
    if distance.shape != (n_fg.shape[0],):
        raise ValueError(f"distance has shape {distance.shape}, expected one value per "
                         f"checkpoint: ({n_fg.shape[0]},)")
    if without_concepts not in ("first", "exclude"):
        raise ValueError(f"without_concepts must be 'first' or 'exclude', got "
                         f"{without_concepts!r}")
    d = distance[peak_checkpoint(n_fg)]
    if without_concepts == "exclude":
        d = np.where(n_fg.max(axis=0) > 0, d, np.nan)
    return d


def distance_spread(peak_distances: np.ndarray) -> dict[str, float]:
    """``D_mean``, ``D_std`` and ``D_var`` of the peak distances over images (NaN skipped).

    ``D_std`` is the standard deviation and ``D_var`` the variance (what the original code
    prints under the name "var"), both with ``ddof = 0`` as numpy's ``np.var``, so
    ``D_std ** 2 == D_var``.

    Parameters
    ----------
    peak_distances : array (N,)
        ``d(m^)`` per image.

    Returns
    -------
    dict with keys ``"D_mean"``, ``"D_std"``, ``"D_var"`` (NaN if no finite value).
    """
    d = np.asarray(peak_distances, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"D_mean": float("nan"), "D_std": float("nan"), "D_var": float("nan")}
    var = float(np.var(d))
    return {"D_mean": float(np.mean(d)), "D_std": float(np.sqrt(var)), "D_var": var}


def stability(concepts: np.ndarray, foreground: np.ndarray, *,
              empty: Literal["zero", "exclude"] = "zero") -> np.ndarray:
    """Per image ``|S_M| / |union_j S_j|`` (docs/method.md section 4, hypothesis 3); ``rho`` is its mean.

    ``S_j`` is the set of foreground concept cells at checkpoint j and M the last checkpoint.

    Parameters
    ----------
    concepts : bool array (M, N, g, g)
    foreground : bool array (N, g, g)
    empty : {"zero", "exclude"}
        An image whose foreground never holds a concept has ``0/0``: ``"zero"`` (the
        original code) counts it as 0, ``"exclude"`` gives NaN (left out of the mean).

    Returns
    -------
    float array (N,)
    """
    concepts = np.asarray(concepts, dtype=bool)
    foreground = np.asarray(foreground, dtype=bool)
    if empty not in ("zero", "exclude"):
        raise ValueError(f"empty must be 'zero' or 'exclude', got {empty!r}")
    fg_concepts = concepts & foreground
    last = fg_concepts[-1].sum(axis=(-2, -1)).astype(np.float64)
    union = fg_concepts.any(axis=0).sum(axis=(-2, -1)).astype(np.float64)
    fill = 0.0 if empty == "zero" else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, last / np.maximum(union, 1.0), fill)


def usable_images(entropy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which images have a finite entropy grid at every checkpoint.

    Parameters
    ----------
    entropy : array (M, N, g, g)

    Returns
    -------
    usable : bool array (N,)
    first_bad : int array (N,)
        Index of the first checkpoint without usable signal, -1 for usable images.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    bad = ~np.isfinite(entropy).all(axis=(-2, -1))  # (M, N)
    usable = ~bad.any(axis=0)
    first_bad = np.where(usable, -1, np.argmax(bad, axis=0))
    return usable, first_bad


def effective_images(entropy: np.ndarray, foreground: np.ndarray, epochs: np.ndarray,
                     late_epoch: float) -> tuple[np.ndarray, np.ndarray]:
    """The original protocol's selection of "effective" images (docs/method.md section 4).

    At every checkpoint with ``epoch >= late_epoch`` an image whose mean background entropy
    is below its mean foreground entropy (the network uses its background more than its
    object) is rejected; so is an image where either mean is undefined (no foreground or
    no background cell, or no usable signal), as in the original code. Equal means pass.

    Parameters
    ----------
    entropy : array (M, N, g, g)
    foreground : bool array (N, g, g)
    epochs : int array (M,)
    late_epoch : float
        The first epoch that counts as late (40 of 150 in the original).

    Returns
    -------
    effective : bool array (N,)
    first_rejecting : int array (N,)
        Index of the first late checkpoint that rejects the image, -1 if effective.
    """
    entropy, foreground = _check_grids(entropy, foreground)
    epochs = np.asarray(epochs)
    if epochs.shape != (entropy.shape[0],):
        raise ValueError(f"epochs has shape {epochs.shape}, expected ({entropy.shape[0]},)")
    fg, bg = region_means(entropy, foreground)  # (M, N) each
    with np.errstate(invalid="ignore"):
        ok = bg - fg >= 0  # NaN compares False: rejected
    late = epochs >= late_epoch
    reject = ~ok & late[:, None]
    effective = ~reject.any(axis=0)
    first = np.where(effective, -1, np.argmax(reject, axis=0))
    return effective, first


@dataclass
class ModelConcepts:
    """The concepts of one model on a set of images, at every checkpoint.

    Attributes
    ----------
    epochs : int array (M,)
    distance : float array (M,)
        Weight distance ``d`` used for hypothesis 2.
    h_bar : float array (M, N)
        Baseline entropy ``H_bar`` per (checkpoint, image).
    concepts : bool array (M, N, g, g)
    n_fg, n_bg : int arrays (M, N)
        ``N_fg``, ``N_bg`` at every checkpoint.
    count_index : int
        The checkpoint whose counts give hypothesis 1 (the last by default).
    fg_ratio : float array (N,)
        Per image ``N_fg / (N_fg + N_bg)`` at ``count_index``.
    peak_index : int array (N,)
        ``m^`` per image.
    peak_distance : float array (N,)
        ``d(m^)`` per image (NaN if excluded).
    rho : float array (N,)
        Per image ``|S_M| / |union_j S_j|`` (NaN if excluded).
    """

    epochs: np.ndarray
    distance: np.ndarray
    h_bar: np.ndarray
    concepts: np.ndarray
    n_fg: np.ndarray
    n_bg: np.ndarray
    count_index: int
    fg_ratio: np.ndarray
    peak_index: np.ndarray
    peak_distance: np.ndarray
    rho: np.ndarray

    @property
    def count_epoch(self) -> int:
        """The epoch of the checkpoint that gives hypothesis 1's counts."""
        return int(self.epochs[self.count_index])

    def image_metrics(self) -> dict[str, np.ndarray]:
        """Per-image metric arrays (N,): N_fg, N_bg, fg_ratio, peak_distance, rho."""
        return {
            "N_fg": self.n_fg[self.count_index].astype(np.float64),
            "N_bg": self.n_bg[self.count_index].astype(np.float64),
            "fg_ratio": self.fg_ratio,
            "peak_distance": self.peak_distance,
            "rho": self.rho,
        }


def model_concepts(entropy: np.ndarray, foreground: np.ndarray, epochs: np.ndarray,
                   distance: np.ndarray, *,
                   concept_threshold: float = DEFAULT_CONCEPT_THRESHOLD,
                   baseline_entropy: BaselineMode = "pooled",
                   count_epoch: int | None = None,
                   peak_without_concepts: Literal["first", "exclude"] = "first",
                   empty_rho: Literal["zero", "exclude"] = "zero") -> ModelConcepts:
    """All of docs/method.md section 4's per-image numbers for one model on the images given.

    Parameters
    ----------
    entropy : array (M, N, g, g)
        Must be finite: select usable images first (:func:`usable_images`).
    foreground : bool array (N, g, g)
    epochs : int array (M,), increasing
    distance : float array (M,)
        Weight distance ``d`` at each checkpoint.
    concept_threshold : float
        ``b``.
    baseline_entropy : {"pooled", "per_image"}
        See :func:`background_entropy`; pooled over exactly the images given.
    count_epoch : int, optional
        The checkpoint epoch whose ``N_fg``, ``N_bg`` and ``fg_ratio`` are reported for
        hypothesis 1; None takes the last checkpoint.
    peak_without_concepts, empty_rho
        See :func:`peak_distance` and :func:`stability`.

    Returns
    -------
    ModelConcepts
    """
    entropy, foreground = _check_grids(entropy, foreground)
    epochs = np.asarray(epochs)
    if not np.isfinite(entropy).all():
        raise ValueError("model_concepts needs finite entropy grids; drop the images without "
                         "usable signal first (see usable_images)")
    if count_epoch is None:
        count_index = entropy.shape[0] - 1
    else:
        hits = np.flatnonzero(epochs == count_epoch)
        if hits.size == 0:
            raise ValueError(f"count_epoch {count_epoch} is not an analysed checkpoint; "
                             f"the checkpoints are at epochs {epochs.tolist()}")
        count_index = int(hits[0])
    h_bar = background_entropy(entropy, foreground, baseline_entropy)
    if entropy.shape[1] > 0 and np.isnan(h_bar).any():
        raise ValueError("the baseline entropy H_bar is undefined: no analysed image has a "
                         "background cell; check the foreground masks (an all-foreground "
                         "mask leaves nothing to compare against)")
    concepts = concept_cells(entropy, h_bar, concept_threshold)
    n_fg, n_bg = count_concepts(concepts, foreground)
    return ModelConcepts(
        epochs=epochs,
        distance=np.asarray(distance, dtype=np.float64),
        h_bar=h_bar,
        concepts=concepts,
        n_fg=n_fg,
        n_bg=n_bg,
        count_index=count_index,
        fg_ratio=foreground_ratio(n_fg[count_index], n_bg[count_index]),
        peak_index=peak_checkpoint(n_fg),
        peak_distance=peak_distance(n_fg, distance, without_concepts=peak_without_concepts),
        rho=stability(concepts, foreground, empty=empty_rho),
    )
