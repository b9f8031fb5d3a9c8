"""The concept threshold of one estimator, calibrated against the reference (docs/method.md section 4).

``b = 0.2`` was set for the reference optimisation, whose within-image entropy range is
about 3x narrower than that of an optimiser run to convergence, so the same ``b`` marks
other cells under another estimator. docs/method.md section 4: "A concept rule used with another estimator
must be calibrated against the reference."

:func:`calibrate_threshold` does that on grids that both estimators computed for the same
(network, checkpoint, image): it finds the threshold ``b'`` at which the other estimator
marks exactly as many concept cells as the reference marks at ``b`` (count matching: the
concept rule ``H_bar - H_i > b`` is monotone in ``b``, so ``b'`` is a quantile of the other
estimator's margins ``H_bar - H_i``), and says how well the two sets of cells agree at ``b``
and at ``b'`` (Jaccard index). ``H_bar`` is computed per network and checkpoint over the
calibration images, for each estimator alike.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(3.0, 0.2, (1, 4, 8, 8))
>>> fg = np.zeros((4, 8, 8), bool); fg[:, 2:6, 2:6] = True
>>> cal = calibrate_threshold([ref], [3.0 * ref], [fg])   # 3x wider, same ranking
>>> cal.reference_concepts == cal.concepts_calibrated, cal.agreement_calibrated
(True, 1.0)
>>> round(cal.range_ratio, 2), cal.concepts_uncalibrated > cal.reference_concepts
(3.0, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from kdexplain.concepts.metrics import (
    DEFAULT_CONCEPT_THRESHOLD,
    BaselineMode,
    background_entropy,
)


@dataclass(frozen=True)
class ThresholdCalibration:
    """How the concept rule of one estimator maps onto the reference's.

    Attributes
    ----------
    reference_threshold : float
        ``b`` of the reference estimator (0.2).
    calibrated_threshold : float
        ``b'``: the other estimator marks as many concept cells at ``b'`` as the reference
        at ``b``.
    grids : int
        (network, checkpoint, image) grids compared.
    cells : int
        Cells with a finite entropy under both estimators.
    reference_concepts : int
        Concept cells of the reference at ``b``.
    concepts_uncalibrated, concepts_calibrated : int
        Concept cells of the other estimator at ``b`` and at ``b'``.
    agreement_uncalibrated, agreement_calibrated : float
        Jaccard index of the two concept sets (``|A & B| / |A | B|``; 1 when both are
        empty) at ``b`` and at ``b'``.
    range_ratio : float
        Median over grids of the other estimator's within-image entropy range (max - min)
        over the reference's (docs/method.md section 4 expects about 3 for an optimiser run to convergence).
    """

    reference_threshold: float
    calibrated_threshold: float
    grids: int
    cells: int
    reference_concepts: int
    concepts_uncalibrated: int
    concepts_calibrated: int
    agreement_uncalibrated: float
    agreement_calibrated: float
    range_ratio: float

    @property
    def scale(self) -> float:
        """``b' / b``."""
        return self.calibrated_threshold / self.reference_threshold

    def to_dict(self) -> dict:
        return {**asdict(self), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> ThresholdCalibration:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def concept_margins(entropy: np.ndarray, foreground: np.ndarray,
                    mode: BaselineMode = "pooled") -> np.ndarray:
    """``H_bar - H_i`` for every cell: a cell is a concept at ``b`` when its margin is > b.

    Parameters
    ----------
    entropy : array (M, N, g, g)
        One network's grids at M checkpoints for N images (NaN: no signal).
    foreground : bool array (N, g, g)
    mode : {"pooled", "per_image"}
        How ``H_bar`` is formed (:func:`~kdexplain.concepts.background_entropy`).

    Returns
    -------
    array (M, N, g, g)
        NaN where the entropy or ``H_bar`` is NaN.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    h_bar = background_entropy(entropy, foreground, mode)
    return h_bar[:, :, None, None] - entropy


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else float((a & b).sum()) / union


def matched_threshold(margins: np.ndarray, n_concepts: int) -> float:
    """The threshold at which exactly ``n_concepts`` of ``margins`` lie above it.

    Midway between the ``n``-th and the ``n+1``-th largest margin; above the largest when
    ``n_concepts`` is 0, below the smallest when it is ``len(margins)``. Ties can make an
    exact match impossible; then the count at the result is the nearest one below.
    """
    m = np.sort(np.asarray(margins, dtype=np.float64).ravel())[::-1]
    if m.size == 0:
        raise ValueError("no finite margins to calibrate on")
    if not 0 <= n_concepts <= m.size:
        raise ValueError(f"n_concepts must lie in [0, {m.size}], got {n_concepts}")
    if n_concepts == 0:
        return float(m[0] + max(1e-6, 1e-6 * abs(m[0])))
    if n_concepts == m.size:
        return float(m[-1] - max(1e-6, 1e-6 * abs(m[-1])))
    return float(0.5 * (m[n_concepts - 1] + m[n_concepts]))


def calibrate_threshold(reference: Sequence[np.ndarray], other: Sequence[np.ndarray],
                        foreground: Sequence[np.ndarray], *,
                        threshold: float = DEFAULT_CONCEPT_THRESHOLD,
                        mode: BaselineMode = "pooled") -> ThresholdCalibration:
    """Calibrate ``other``'s concept threshold against ``reference``'s ``threshold``.

    Parameters
    ----------
    reference, other : sequences of arrays (M_k, N_k, g, g)
        Entropy grids of the same networks, checkpoints and images under the two
        estimators; one array per network (``H_bar`` is formed per network and checkpoint).
    foreground : sequence of bool arrays (N_k, g, g)
        Each network's foreground cells.
    threshold : float
        ``b`` of the reference (0.2).
    mode : {"pooled", "per_image"}
        How ``H_bar`` is formed.

    Returns
    -------
    ThresholdCalibration
    """
    if not (len(reference) == len(other) == len(foreground)) or not reference:
        raise ValueError("give one reference array, one other array and one foreground per "
                         f"network (got {len(reference)}, {len(other)}, {len(foreground)})")
    ref_m, oth_m, ratios = [], [], []
    for k, (r, o, fg) in enumerate(zip(reference, other, foreground, strict=True)):
        r, o = np.asarray(r, dtype=np.float64), np.asarray(o, dtype=np.float64)
        if r.shape != o.shape:
            raise ValueError(f"network {k}: the reference grids {r.shape} and the other "
                             f"estimator's {o.shape} differ; give the same checkpoints and "
                             "images to both")
        mr, mo = concept_margins(r, fg, mode), concept_margins(o, fg, mode)
        ok = np.isfinite(mr) & np.isfinite(mo)
        ref_m.append(mr[ok])
        oth_m.append(mo[ok])
        flat_r = r.reshape(-1, r.shape[-2] * r.shape[-1])
        flat_o = o.reshape(-1, o.shape[-2] * o.shape[-1])
        rows = np.isfinite(flat_r).any(1) & np.isfinite(flat_o).any(1)  # grids with a signal
        if rows.any():
            fr, fo = flat_r[rows], flat_o[rows]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios.append((np.nanmax(fo, 1) - np.nanmin(fo, 1))
                              / (np.nanmax(fr, 1) - np.nanmin(fr, 1)))
    mr, mo = np.concatenate(ref_m), np.concatenate(oth_m)
    if mr.size == 0:
        raise ValueError("no cell has a finite entropy under both estimators; nothing to "
                         "calibrate on")
    ref_c = mr > threshold
    b_cal = matched_threshold(mo, int(ref_c.sum()))
    unc, cal = mo > threshold, mo > b_cal
    ratio = np.concatenate(ratios)
    ratio = ratio[np.isfinite(ratio)]
    return ThresholdCalibration(
        reference_threshold=float(threshold), calibrated_threshold=b_cal,
        grids=int(sum(np.asarray(r).shape[0] * np.asarray(r).shape[1] for r in reference)),
        cells=int(mr.size), reference_concepts=int(ref_c.sum()),
        concepts_uncalibrated=int(unc.sum()), concepts_calibrated=int(cal.sum()),
        agreement_uncalibrated=_jaccard(ref_c, unc), agreement_calibrated=_jaccard(ref_c, cal),
        range_ratio=float(np.median(ratio)) if ratio.size else float("nan"))
