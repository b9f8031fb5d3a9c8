"""Statistics for comparing the student S with the baseline B.

- :func:`bootstrap_ci`: percentile bootstrap confidence interval of a mean or a spread,
  vectorised; with several seeds a two-stage (cluster) bootstrap that resamples seeds, then
  images within each seed.
- :func:`paired_bootstrap_ci`: the same for the difference S - B on paired units.
- :func:`seed_paired_test`: the test that carries the verdicts with two or more seeds: an
  exact sign-flip permutation test of S against B paired by seed, on per-seed values (a mean
  or a spread over that seed's images); :func:`min_seed_p_value` is the smallest p it can
  give at a number of seeds.
- :func:`paired_test`: Wilcoxon signed-rank test of S against B per image of one run, with the
  median difference and the matched-pairs rank-biserial correlation as effect sizes (with
  several seeds: a within-run diagnostic).
- :func:`spread_test`: a paired permutation test on the difference of spreads (standard
  deviations) over the images of one run, for ``D_std``.

The decision rule that turns these tests into verdicts is :mod:`kdexplain.concepts.verdicts`.

Every random draw comes from ``numpy.random.default_rng(seed)``: the same inputs and seed
give the same numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _st

__all__ = [
    "BootstrapCI",
    "PairedTest",
    "bootstrap_ci",
    "paired_bootstrap_ci",
    "min_seed_p_value",
    "paired_test",
    "seed_paired_test",
    "spread_test",
]

Statistic = Literal["mean", "std", "var"]
Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with its percentile bootstrap interval.

    Attributes
    ----------
    estimate : float
        The statistic on the data (with groups: the mean over groups of the per-group
        statistic).
    low, high : float
        Percentile interval at ``level``.
    se : float
        Standard deviation of the bootstrap distribution (bootstrap standard error).
    level : float
    n : int
        Number of finite units used.
    """

    estimate: float
    low: float
    high: float
    se: float
    level: float
    n: int


@dataclass(frozen=True)
class PairedTest:
    """The result of a paired comparison of S against B.

    Attributes
    ----------
    test : str
        ``"wilcoxon"``, ``"permutation (sd difference)"`` or ``"sign-flip over seeds"``.
    n : int
        Number of pairs used (pairs with a NaN are dropped).
    n_nonzero : int
        Pairs whose difference is not 0 (what the Wilcoxon test ranks).
    statistic : float
        Wilcoxon: the smaller of the signed-rank sums; permutation: the observed difference.
    p_value : float
        Two-sided; 1.0 when every difference is 0; NaN when there is no pair.
    median_diff : float
        Median of ``s - b`` over pairs (NaN for the spread test).
    effect_size : float
        Wilcoxon: matched-pairs rank-biserial ``r = (R+ - R-) / (R+ + R-)`` in [-1, 1],
        positive when S tends to be larger (0 when all differences are 0). Spread test:
        ``sd_S / sd_B``. Sign-flip over seeds: Cohen's ``d_z = mean(diff) / sd(diff)``
        (ddof 1) of the per-seed differences (NaN with one seed or when all are equal).
    effect_size_kind : str
    sign : int
        +1 if S is larger than B by the test's own measure (rank-biserial or sd
        difference), -1 if smaller, 0 if equal.
    """

    test: str
    n: int
    n_nonzero: int
    statistic: float
    p_value: float
    median_diff: float
    effect_size: float
    effect_size_kind: str
    sign: int


# --------------------------------------------------------------------------- bootstrap

def _groups_of(n: int, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Order units by group; return (order, group sizes)."""
    if groups is None:
        return np.arange(n), np.array([n])
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}, expected one label per value ({n},)")
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return order, np.bincount(inverse)


def _resample(sizes: np.ndarray, n_resamples: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage bootstrap indices into group-ordered units.

    Returns idx (R, K, L) and mask (R, K, L): for each resample, K groups drawn with
    replacement and, for each, its units drawn with replacement (L = largest group; the
    slots past a group's size are masked out).
    """
    k, length = sizes.size, int(sizes.max())
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    chosen = rng.integers(0, k, size=(n_resamples, k)) if k > 1 else \
        np.zeros((n_resamples, 1), dtype=np.int64)
    n_chosen = sizes[chosen]  # (R, K)
    pos = np.floor(rng.random((n_resamples, k, length)) * n_chosen[..., None]).astype(np.int64)
    mask = np.arange(length)[None, None, :] < n_chosen[..., None]
    idx = np.where(mask, offsets[chosen][..., None] + pos, 0)
    return idx, mask


def _masked_stat(x: np.ndarray, mask: np.ndarray, statistic: Statistic) -> np.ndarray:
    """Statistic over the last axis where mask is True (ddof 0 for std/var)."""
    n = mask.sum(-1)
    mean = np.where(mask, x, 0.0).sum(-1) / n
    if statistic == "mean":
        return mean
    var = np.where(mask, (x - mean[..., None]) ** 2, 0.0).sum(-1) / n
    return var if statistic == "var" else np.sqrt(var)


def _stat(x: np.ndarray, statistic: Statistic) -> float:
    if statistic == "mean":
        return float(np.mean(x))
    return float(np.var(x)) if statistic == "var" else float(np.std(x))


def _grouped_stat(x: np.ndarray, sizes: np.ndarray, statistic: Statistic) -> float:
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return float(np.mean([_stat(x[a:b], statistic) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]))


def _check_statistic(statistic: str) -> None:
    if statistic not in ("mean", "std", "var"):
        raise ValueError(f"statistic must be 'mean', 'std' or 'var', got {statistic!r}")


def _interval(boot: np.ndarray, level: float) -> tuple[float, float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    se = float(np.std(boot, ddof=1)) if boot.size > 1 else float("nan")
    return float(lo), float(hi), se


def bootstrap_ci(values: np.ndarray, *, groups: np.ndarray | None = None,
                 statistic: Statistic = "mean", n_resamples: int = 2000, level: float = 0.95,
                 seed: int = 0) -> BootstrapCI:
    """Percentile bootstrap confidence interval of a mean, standard deviation or variance.

    Parameters
    ----------
    values : array (n,)
        One value per unit (image); NaN values are dropped.
    groups : array (n,), optional
        Cluster label per unit (the seed). With two or more groups the bootstrap resamples
        groups with replacement and then units within each chosen group, and the statistic
        is the mean over groups of the per-group statistic (variation over seeds is kept).
    statistic : {"mean", "std", "var"}
        ``std`` and ``var`` use ``ddof = 0``.
    n_resamples : int
    level : float
        Coverage, e.g. 0.95.
    seed : int
        Seed of the resampling; the same seed gives the same interval.

    Returns
    -------
    BootstrapCI
        All NaN when no finite value is left.
    """
    _check_statistic(statistic)
    values = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(values)
    if groups is not None:
        groups = np.asarray(groups).ravel()
        if groups.shape != values.shape:
            raise ValueError(f"groups has shape {groups.shape}, values {values.shape}")
        groups = groups[keep]
    values = values[keep]
    nan = float("nan")
    if values.size == 0:
        return BootstrapCI(nan, nan, nan, nan, level, 0)
    order, sizes = _groups_of(values.size, groups)
    x = values[order]
    estimate = _grouped_stat(x, sizes, statistic)
    idx, mask = _resample(sizes, n_resamples, np.random.default_rng(seed))
    boot = _masked_stat(x[idx], mask, statistic).mean(-1)
    lo, hi, se = _interval(boot, level)
    return BootstrapCI(estimate, lo, hi, se, level, int(values.size))


def _paired_finite(s: np.ndarray, b: np.ndarray, groups: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    s = np.asarray(s, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if s.shape != b.shape:
        raise ValueError(f"paired values differ in length: S has {s.size}, B has {b.size}")
    keep = np.isfinite(s) & np.isfinite(b)
    if groups is not None:
        groups = np.asarray(groups).ravel()
        if groups.shape != s.shape:
            raise ValueError(f"groups has shape {groups.shape}, values {s.shape}")
        groups = groups[keep]
    return s[keep], b[keep], groups


def paired_bootstrap_ci(s: np.ndarray, b: np.ndarray, *, groups: np.ndarray | None = None,
                        statistic: Statistic = "mean", n_resamples: int = 2000,
                        level: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Bootstrap interval of ``stat(S) - stat(B)`` on paired units (resampled together).

    Parameters
    ----------
    s, b : arrays (n,)
        Paired values (same image, same seed); pairs with a NaN are dropped.
    groups, statistic, n_resamples, level, seed
        As in :func:`bootstrap_ci`.
    """
    _check_statistic(statistic)
    s, b, groups = _paired_finite(s, b, groups)
    nan = float("nan")
    if s.size == 0:
        return BootstrapCI(nan, nan, nan, nan, level, 0)
    order, sizes = _groups_of(s.size, groups)
    s, b = s[order], b[order]
    estimate = _grouped_stat(s, sizes, statistic) - _grouped_stat(b, sizes, statistic)
    idx, mask = _resample(sizes, n_resamples, np.random.default_rng(seed))
    boot = (_masked_stat(s[idx], mask, statistic) - _masked_stat(b[idx], mask, statistic)).mean(-1)
    lo, hi, se = _interval(boot, level)
    return BootstrapCI(estimate, lo, hi, se, level, int(s.size))


# --------------------------------------------------------------------------- tests

def paired_test(s: np.ndarray, b: np.ndarray) -> PairedTest:
    """Wilcoxon signed-rank test of S against B on paired units (two-sided).

    Zero differences are dropped before ranking (``zero_method="wilcox"``); the p-value is
    exact for up to 50 distinct non-zero differences and otherwise from scipy's
    ``method="auto"`` (permutations for n <= 13 with ties, else the normal approximation).
    When every difference is zero there is no evidence either way: p = 1.

    Parameters
    ----------
    s, b : arrays (n,)
        The metric per image for S and for B (pairs with a NaN are dropped).

    Returns
    -------
    PairedTest
    """
    s, b, _ = _paired_finite(s, b, None)
    diff = s - b
    n = int(diff.size)
    nan = float("nan")
    kind = "matched-pairs rank-biserial r"
    if n == 0:
        return PairedTest("wilcoxon", 0, 0, nan, nan, nan, nan, kind, 0)
    nonzero = diff[diff != 0]
    median = float(np.median(diff))
    if nonzero.size == 0:
        return PairedTest("wilcoxon", n, 0, 0.0, 1.0, median, 0.0, kind, 0)
    ranks = _st.rankdata(np.abs(nonzero))
    r_plus = float(ranks[nonzero > 0].sum())
    r_minus = float(ranks[nonzero < 0].sum())
    r = (r_plus - r_minus) / (r_plus + r_minus)
    res = _st.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided", method="auto")
    return PairedTest("wilcoxon", n, int(nonzero.size), float(res.statistic),
                      float(res.pvalue), median, float(r), kind, int(np.sign(r)))


def spread_test(s: np.ndarray, b: np.ndarray, *, groups: np.ndarray | None = None,
                n_permutations: int = 5000, seed: int = 0) -> PairedTest:
    """Paired permutation test on the difference of standard deviations ``sd_S - sd_B``.

    Under the null hypothesis S and B are exchangeable within each pair (same image), so
    the labels of every pair are swapped at random. The statistic is the mean over groups
    (seeds) of ``std(S) - std(B)`` (ddof 0). All ``2^n`` swaps are enumerated when that is
    at most ``n_permutations``; otherwise ``n_permutations`` random swaps are drawn and
    ``p = (1 + #{|T*| >= |T|}) / (1 + n_permutations)``. Two-sided.

    Parameters
    ----------
    s, b : arrays (n,)
        Paired values (here ``d(m^)`` per image); pairs with a NaN are dropped.
    groups : array (n,), optional
        Seed of each pair.
    n_permutations : int
    seed : int

    Returns
    -------
    PairedTest
        ``effect_size`` is ``sd_S / sd_B`` (inf when ``sd_B`` is 0 and ``sd_S`` is not).
    """
    s, b, groups = _paired_finite(s, b, groups)
    n = int(s.size)
    nan = float("nan")
    name, kind = "permutation (sd difference)", "sd ratio S/B"
    if n == 0:
        return PairedTest(name, 0, 0, nan, nan, nan, nan, kind, 0)
    order, sizes = _groups_of(n, groups)
    s, b = s[order], b[order]
    bounds = np.concatenate([[0], np.cumsum(sizes)])

    def stat(ss: np.ndarray, bb: np.ndarray) -> np.ndarray:  # (..., n) -> (...)
        out = 0.0
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            out = out + ss[..., lo:hi].std(-1) - bb[..., lo:hi].std(-1)
        return out / len(sizes)

    observed = float(stat(s, b))
    n_nonzero = int(np.count_nonzero(s != b))
    sd_s = float(np.mean([s[lo:hi].std() for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]))
    sd_b = float(np.mean([b[lo:hi].std() for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.divide(sd_s, sd_b)) if sd_b > 0 else (float("inf") if sd_s > 0 else nan)
    tol = 1e-12 * max(1.0, abs(observed))
    if n_nonzero == 0 or abs(observed) <= tol:
        return PairedTest(name, n, n_nonzero, observed, 1.0, nan, ratio, kind, 0)
    if 2 ** n <= n_permutations:
        flips = np.array(list(itertools.product([False, True], repeat=n)), dtype=bool)
        null = stat(np.where(flips, b, s), np.where(flips, s, b))
        p = float(np.mean(np.abs(null) >= abs(observed) - tol))
    else:
        flips = np.random.default_rng(seed).random((n_permutations, n)) < 0.5
        null = stat(np.where(flips, b, s), np.where(flips, s, b))
        p = float((1 + np.count_nonzero(np.abs(null) >= abs(observed) - tol))
                  / (1 + n_permutations))
    return PairedTest(name, n, n_nonzero, observed, p, nan, ratio, kind,
                      int(np.sign(observed)))


def min_seed_p_value(n_seeds: int) -> float:
    """The smallest two-sided p-value :func:`seed_paired_test` can give with ``n_seeds``.

    Every sign pattern of the ``n`` per-seed differences has probability ``2^-n`` under the
    null hypothesis; the most extreme outcome (all differences of one sign) and its mirror
    image give ``p = 2 / 2^n``: 0.5 at 2 seeds, 0.25 at 3, 0.0625 at 5, 0.03125 at 6.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    return float(min(1.0, 2.0 ** (1 - n_seeds)))


def seed_paired_test(s: np.ndarray, b: np.ndarray, *, n_permutations: int = 65536,
                     seed: int = 0, alternative: Alternative = "two-sided") -> PairedTest:
    """Exact sign-flip permutation test of S against B, paired by seed (two-sided by default).

    Each pair is one training run: S and B of one seed share their initialisation and data
    order, and the values are that run's per-seed statistic (the mean, or the spread, over
    its images). Under the null hypothesis the sign of each per-seed difference
    ``diff_k = s_k - b_k`` is equally likely + or -, whatever the distribution of the
    differences, so the ``2^n`` sign patterns are enumerated exactly and
    ``p = #{patterns with |mean(diff*)| >= |mean(diff)|} / 2^n``. The test assumes only that
    the seeds are independent runs; its smallest p is :func:`min_seed_p_value` ``(n)``.
    Above ``n_permutations`` patterns, ``n_permutations`` random ones are drawn and
    ``p = (1 + #{extreme}) / (1 + n_permutations)``.

    Parameters
    ----------
    s, b : arrays (n_seeds,)
        The per-seed values of S and B (pairs with a NaN are dropped).
    n_permutations : int
        Largest number of sign patterns enumerated exactly (2^16 = 16 seeds).
    seed : int
        Seed of the random patterns beyond that.
    alternative : {"two-sided", "greater", "less"}
        ``"greater"``: the one-sided test of ``mean(diff) > 0``, ``p = #{patterns with
        mean(diff*) >= mean(diff)} / 2^n`` (smallest: ``2^-n``, 1/32 at 5 seeds), for a
        direction fixed before looking; ``"less"`` the mirror image.

    Returns
    -------
    PairedTest
        ``statistic`` is ``mean(diff)``; ``median_diff`` the median per-seed difference;
        ``effect_size`` Cohen's ``d_z``; ``sign`` the sign of ``mean(diff)``; ``p = 1`` when
        every difference is 0.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got "
                         f"{alternative!r}")
    s, b, _ = _paired_finite(s, b, None)
    diff = s - b
    n = int(diff.size)
    nan = float("nan")
    name, kind = "sign-flip over seeds", "Cohen's d_z over seeds"
    if n == 0:
        return PairedTest(name, 0, 0, nan, nan, nan, nan, kind, 0)
    observed = float(diff.mean())
    n_nonzero = int(np.count_nonzero(diff))
    sd = float(diff.std(ddof=1)) if n > 1 else nan
    d_z = observed / sd if np.isfinite(sd) and sd > 0 else nan
    median = float(np.median(diff))
    tol = 1e-12 * max(1.0, float(np.abs(diff).max()))
    if n_nonzero == 0 or (alternative == "two-sided" and abs(observed) <= tol):
        return PairedTest(name, n, n_nonzero, observed, 1.0, median, d_z, kind, 0)

    def extreme(null: np.ndarray) -> np.ndarray:
        if alternative == "greater":
            return null >= observed - tol
        if alternative == "less":
            return null <= observed + tol
        return np.abs(null) >= abs(observed) - tol

    if 2 ** n <= n_permutations:
        signs = 1.0 - 2.0 * np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.float64)
        p = float(np.mean(extreme((signs * diff).mean(-1))))
    else:
        signs = np.where(np.random.default_rng(seed).random((n_permutations, n)) < 0.5, -1.0, 1.0)
        p = float((1 + np.count_nonzero(extreme((signs * diff).mean(-1))))
                  / (1 + n_permutations))
    if alternative != "two-sided":
        name = f"{name}, one-sided ({alternative})"
    return PairedTest(name, n, n_nonzero, observed, p, median, d_z, kind, int(np.sign(observed)))
