"""Seed-level statistics of the Hinton reproduction: the seed is the unit of replication.

Every net of a seed (teacher, small net on labels, distilled small net, sweep students) is
trained from that seed, so the numbers of one seed are paired and the seeds are the
independent replicates. With few seeds (the paper protocol has 5) the bootstrap over seeds
is **exact**: all ``n^n`` ordered resamples are enumerated (3125 at 5 seeds), so the
intervals carry no Monte Carlo noise; with more seeds ``n_resamples`` random ones are drawn.
A percentile bootstrap over 5 units is rough (it tends to be narrow); the pages say so.

- :func:`gap_closed`: the share of the small-net-to-teacher gap that distillation closes,
  ``(err_small - err_distilled) / (err_small - err_teacher)`` on the means over seeds
  (a ratio of means), with its bootstrap interval and a one-sided test, paired by seed, of
  ``err_small - err_distilled > 0``.
- :func:`best_temperature`: the temperature at the minimum of the mean error curve over
  seeds, with the bootstrap distribution of that arg-min.
- :func:`ratio_of_means`: the bootstrap interval of ``mean(a) / mean(b)`` (e.g. the share
  of an omitted class recovered by a bias).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

from kdexplain.concepts.stats import seed_paired_test

__all__ = ["BestTemperature", "GapClosed", "RatioCI", "best_temperature", "gap_closed",
           "ratio_of_means", "seed_resamples"]

#: Largest number of ordered resamples enumerated exactly (6 seeds: 46 656).
MAX_EXACT = 50_000


def seed_resamples(n_seeds: int, n_resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """Indices of bootstrap resamples of ``n_seeds`` seeds, shape ``(R, n_seeds)``.

    All ``n^n`` ordered resamples (each with probability ``n^-n``, which is exactly the
    bootstrap distribution) when ``n^n <= MAX_EXACT``; otherwise ``n_resamples`` drawn with
    ``numpy.random.default_rng(seed)``.
    """
    if n_seeds < 1:
        raise ValueError(f"need at least one seed, got {n_seeds}")
    if n_seeds ** n_seeds <= MAX_EXACT:
        return np.array(list(itertools.product(range(n_seeds), repeat=n_seeds)), dtype=np.int64)
    return np.random.default_rng(seed).integers(0, n_seeds, size=(n_resamples, n_seeds))


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval; ``inverted_cdf`` so the ends are values the bootstrap takes."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(lo), float(hi)


def _as_seeds(*arrays: Sequence[float]) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    n = {a.size for a in out}
    if len(n) != 1 or 0 in n:
        raise ValueError(f"need one value per seed in each array, got lengths "
                         f"{[a.size for a in out]}")
    return out


@dataclass(frozen=True)
class RatioCI:
    """``mean(a) / mean(b)`` over seeds with its percentile bootstrap interval.

    Attributes
    ----------
    estimate : float
    low, high : float
        Interval at ``level`` over the resamples whose ratio is defined.
    level : float
    n_seeds : int
    exact : bool
        True when all ``n^n`` resamples were enumerated.
    undefined_share : float
        Share of resamples whose denominator was not positive (left out of the interval).
    """

    estimate: float
    low: float
    high: float
    level: float
    n_seeds: int
    exact: bool
    undefined_share: float

    def as_dict(self) -> dict:
        return asdict(self)


def ratio_of_means(a: Sequence[float], b: Sequence[float], *, level: float = 0.95,
                   n_resamples: int = 10_000, seed: int = 0) -> RatioCI:
    """``mean(a) / mean(b)`` (``b`` must be positive on average), paired by seed.

    Parameters
    ----------
    a, b : arrays (n_seeds,)
        Numerator and denominator per seed, resampled together.
    level, n_resamples, seed
        See :func:`seed_resamples`.
    """
    a, b = _as_seeds(a, b)
    idx = seed_resamples(a.size, n_resamples, seed)
    num, den = a[idx].mean(1), b[idx].mean(1)
    ok = den > 0
    est = float(a.mean() / b.mean()) if b.mean() > 0 else float("nan")
    lo, hi = _quantiles(num[ok] / den[ok], level) if ok.any() else (float("nan"),) * 2
    return RatioCI(est, lo, hi, level, int(a.size), a.size ** a.size <= MAX_EXACT,
                   float(1 - ok.mean()))


@dataclass(frozen=True)
class GapClosed:
    """Share of the small-net-to-teacher gap closed by distillation, at the seed level.

    Attributes
    ----------
    ratio : RatioCI
        ``(mean(err_small) - mean(err_distilled)) / (mean(err_small) - mean(err_teacher))``
        with its bootstrap interval over seeds.
    per_seed : list of float
        The same ratio within each seed (NaN where that seed's teacher is not better).
    mean_gain : float
        ``mean(err_small - err_distilled)``, in the errors' unit.
    sign_flip_p : float
        Exact one-sided sign-flip p of ``err_small - err_distilled > 0`` (smallest possible:
        ``2^-n``, 1/32 at 5 seeds).
    t_p : float
        One-sided paired t-test p of the same (NaN with fewer than two seeds or identical
        differences).
    better_seeds : int
        Seeds in which the distilled net made fewer errors than the one on labels.
    """

    ratio: RatioCI
    per_seed: list[float]
    mean_gain: float
    sign_flip_p: float
    t_p: float
    better_seeds: int

    def as_dict(self) -> dict:
        return asdict(self)


def gap_closed(err_small: Sequence[float], err_distilled: Sequence[float],
               err_teacher: Sequence[float], *, level: float = 0.95,
               n_resamples: int = 10_000, seed: int = 0) -> GapClosed:
    """How much of the gap between the small net and the teacher distillation closes.

    Parameters
    ----------
    err_small, err_distilled, err_teacher : arrays (n_seeds,)
        Test errors (counts or rates, one unit for all three) per seed of the small net on
        labels, the same net distilled, and the teacher. The paper's MNIST numbers, 146, 74
        and 67 errors, give (146 - 74) / (146 - 67) = 91%.
    level, n_resamples, seed
        See :func:`seed_resamples`.

    Returns
    -------
    GapClosed
    """
    s, d, t = _as_seeds(err_small, err_distilled, err_teacher)
    ratio = ratio_of_means(s - d, s - t, level=level, n_resamples=n_resamples, seed=seed)
    gap = s - t
    per_seed = np.where(gap > 0, (s - d) / np.where(gap > 0, gap, 1.0), np.nan)
    test = seed_paired_test(s, d, alternative="greater")
    diff = s - d
    t_p = float("nan")
    if diff.size > 1 and not np.allclose(diff, diff[0]):
        t_p = float(_st.ttest_rel(s, d, alternative="greater").pvalue)
    return GapClosed(ratio, [float(x) for x in per_seed], float(diff.mean()),
                     float(test.p_value), t_p, int((d < s).sum()))


@dataclass(frozen=True)
class BestTemperature:
    """The temperature of lowest mean error, and how stable that choice is over seeds.

    Attributes
    ----------
    best : float
        Arg-min over T of the mean error over seeds (ties: the first T of the grid).
    low, high : float
        Percentile interval at ``level`` of the arg-min over bootstrap resamples of seeds.
    level : float
    share : dict
        ``str(T) -> share of resamples whose arg-min is T`` (every T of the grid).
    share_in_band : float
        Share of resamples whose arg-min lies in ``band``.
    band : tuple of float
        The paper's range (2.5 to 4 for 30-unit nets).
    n_seeds : int
    exact : bool
    """

    best: float
    low: float
    high: float
    level: float
    share: dict
    share_in_band: float
    band: tuple[float, float]
    n_seeds: int
    exact: bool

    def as_dict(self) -> dict:
        return asdict(self)


def best_temperature(temperatures: Sequence[float], errors: np.ndarray, *,
                     band: tuple[float, float] = (2.5, 4.0), level: float = 0.95,
                     n_resamples: int = 10_000, seed: int = 0) -> BestTemperature:
    """Bootstrap over seeds of the arg-min of the mean error curve.

    Parameters
    ----------
    temperatures : sequence of float (K,)
    errors : array (n_seeds, K)
        Test error of the distilled net per seed and temperature.
    band : (float, float)
        Closed range whose share of arg-mins is reported.
    level, n_resamples, seed
        See :func:`seed_resamples`.

    Returns
    -------
    BestTemperature
    """
    temps = np.asarray(temperatures, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2 or errors.shape[1] != temps.size or errors.shape[0] < 1:
        raise ValueError(f"errors must have shape (n_seeds, {temps.size}), got {errors.shape}")
    idx = seed_resamples(errors.shape[0], n_resamples, seed)
    # the mean curve of every resample (R, K); argmin takes the first tie of the grid
    boot = temps[errors[idx].mean(1).argmin(1)]
    lo, hi = _quantiles(boot, level)
    share = {f"{t:g}": float((boot == t).mean()) for t in temps}
    in_band = float(((boot >= band[0]) & (boot <= band[1])).mean())
    n = errors.shape[0]
    return BestTemperature(float(temps[errors.mean(0).argmin()]), lo, hi, level, share,
                           in_band, (float(band[0]), float(band[1])), n, n ** n <= MAX_EXACT)
