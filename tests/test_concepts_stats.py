"""kdexplain.concepts.stats: bootstrap intervals and the paired tests on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

from kdexplain.concepts import (
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLDS,
    bootstrap_ci,
    metric_verdict,
    min_seed_p_value,
    paired_bootstrap_ci,
    paired_test,
    seed_paired_test,
    spread_test,
)


def test_bootstrap_contains_the_mean_and_is_deterministic():
    x = np.random.default_rng(0).normal(5.0, 2.0, 40)
    a = bootstrap_ci(x, seed=3)
    b = bootstrap_ci(x, seed=3)
    assert a == b
    assert a.estimate == pytest.approx(x.mean())
    assert a.low < a.estimate < a.high
    assert a.n == 40 and a.level == 0.95
    # the standard error of a mean is about sd / sqrt(n)
    assert a.se == pytest.approx(x.std() / np.sqrt(40), rel=0.2)
    assert bootstrap_ci(x, seed=4) != a
    narrow = bootstrap_ci(x, level=0.5, seed=3)
    assert a.low < narrow.low < narrow.high < a.high


def test_bootstrap_of_constant_values_and_nan_and_spread():
    c = bootstrap_ci(np.full(10, 2.5))
    assert (c.estimate, c.low, c.high, c.se) == (2.5, 2.5, 2.5, 0.0)
    x = np.array([1.0, np.nan, 3.0])
    assert bootstrap_ci(x).n == 2 and bootstrap_ci(x).estimate == 2.0
    assert np.isnan(bootstrap_ci(np.array([np.nan])).estimate)
    s = bootstrap_ci(np.array([0.0, 2.0, 4.0, 6.0]), statistic="std", seed=0)
    assert s.estimate == pytest.approx(np.std([0, 2, 4, 6]))
    assert 0 <= s.low <= s.estimate <= s.high
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci(x, statistic="median")


def test_bootstrap_with_groups_resamples_seeds():
    # two seeds with different levels: the estimate is the mean of the seed means, and the
    # interval spans the seed-to-seed variation (resampling seeds can give 0 or 10 alone)
    x = np.concatenate([np.zeros(5), np.full(5, 10.0)])
    g = np.repeat([0, 1], 5)
    ci = bootstrap_ci(x, groups=g, seed=0)
    assert ci.estimate == 5.0
    assert ci.low == 0.0 and ci.high == 10.0
    # without groups the units are exchangeable: a much narrower interval
    flat = bootstrap_ci(x, seed=0)
    assert flat.high - flat.low < 10.0
    # unequal group sizes: the estimate weights seeds equally
    x2 = np.array([0.0, 0.0, 0.0, 6.0])
    assert bootstrap_ci(x2, groups=np.array([1, 1, 1, 2])).estimate == 3.0


def test_paired_bootstrap_difference():
    rng = np.random.default_rng(1)
    b = rng.normal(0, 1, 30)
    s = b + 2.0
    d = paired_bootstrap_ci(s, b, seed=0)
    assert d.estimate == pytest.approx(2.0) and d.low == pytest.approx(2.0)
    assert d.high == pytest.approx(2.0)
    sd = paired_bootstrap_ci(2 * b, b, statistic="std", seed=0)
    assert sd.estimate == pytest.approx(np.std(b))
    assert sd.low > 0


def test_wilcoxon_all_positive_exact_p_and_directions():
    b = np.arange(8, dtype=float)
    s = b + np.arange(1, 9)  # 8 distinct positive differences
    t = paired_test(s, b)
    assert t.n == 8 and t.n_nonzero == 8
    assert t.p_value == pytest.approx(2 / 2**8)  # exact two-sided
    assert t.effect_size == 1.0 and t.sign == 1
    assert t.median_diff == 4.5
    assert metric_verdict(t.p_value, t.sign, "greater") == HOLDS
    assert metric_verdict(t.p_value, t.sign, "less") == NOT_HOLDS
    r = paired_test(b, s)
    assert r.effect_size == -1.0 and r.sign == -1 and r.p_value == t.p_value


def test_wilcoxon_rank_biserial_by_hand_and_zero_differences():
    # differences 1, -2, 3 (+ two zeros, dropped): R+ = 1 + 3, R- = 2 -> r = 2/6
    t = paired_test(np.array([1.0, 0.0, 3.0, 5.0, 5.0]), np.array([0.0, 2.0, 0.0, 5.0, 5.0]))
    assert t.n == 5 and t.n_nonzero == 3
    assert t.effect_size == pytest.approx(1 / 3)
    assert t.statistic == 2.0  # the smaller rank sum
    assert t.median_diff == 0.0
    zero = paired_test(np.ones(6), np.ones(6))
    assert zero.p_value == 1.0 and zero.effect_size == 0.0 and zero.sign == 0
    assert metric_verdict(zero.p_value, zero.sign, "greater") == INCONCLUSIVE
    none = paired_test(np.array([np.nan]), np.array([1.0]))
    assert none.n == 0 and np.isnan(none.p_value)
    assert metric_verdict(none.p_value, none.sign, "greater") == INCONCLUSIVE


def test_wilcoxon_symmetric_differences_inconclusive():
    b = np.zeros(10)
    s = np.array([1, -1, 2, -2, 3, -3, 4, -4, 5, -5], dtype=float)
    t = paired_test(s, b)
    assert t.p_value == pytest.approx(1.0) and t.effect_size == 0.0
    assert metric_verdict(t.p_value, t.sign, "greater") == INCONCLUSIVE


def test_spread_test_exact_by_hand():
    # sd_S = 1, sd_B = 0: observed 1; of the 4 swaps, 2 reach |T| >= 1 -> p = 0.5
    t = spread_test(np.array([0.0, 2.0]), np.array([1.0, 1.0]))
    assert t.statistic == pytest.approx(1.0)
    assert t.p_value == pytest.approx(0.5)
    assert t.effect_size == np.inf and t.sign == 1
    same = spread_test(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert same.p_value == 1.0 and same.sign == 0


def test_spread_test_detects_a_smaller_spread():
    rng = np.random.default_rng(2)
    s = 1.0 + 0.05 * rng.standard_normal(40)
    b = 1.0 + 1.0 * rng.standard_normal(40)
    t = spread_test(s, b, n_permutations=2000, seed=0)
    assert t.sign == -1 and t.p_value < 0.01
    assert t.effect_size < 0.2
    assert metric_verdict(t.p_value, t.sign, "less") == HOLDS
    again = spread_test(s, b, n_permutations=2000, seed=0)  # deterministic
    assert (again.p_value, again.statistic) == (t.p_value, t.statistic)


# --------------------------------------------------------------------------- seeds as the unit

def test_seed_paired_test_golden_p_values():
    # 3 seeds, differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |mean| >= 2
    t = seed_paired_test(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    assert (t.n, t.n_nonzero, t.test) == (3, 3, "sign-flip over seeds")
    assert t.p_value == pytest.approx(2 / 8) and t.statistic == pytest.approx(2.0)
    assert t.effect_size == pytest.approx(2.0) and t.sign == 1  # d_z = 2 / 1
    # 4 seeds, differences 1, -2, 3, 4 (sum 6): flipping a set F of |d| gives sum 10 - 2 sum(F);
    # |.| >= 6 for sum(F) in {0, 1, 2} ({}, {1}, {2}) or >= 8 ({1,3,4}, {2,3,4}, {1,2,3,4})
    t = seed_paired_test(np.array([1.0, -2.0, 3.0, 4.0]), np.zeros(4))
    assert t.p_value == pytest.approx(6 / 16) and t.median_diff == pytest.approx(2.0)
    # 5 seeds, differences 3, 1, -1, 2, 4 (|d| sum 11, observed 9): sum(F) <= 1 ({}, {1a},
    # {1b}) or >= 10 (their complements) -> 6 of 32
    t = seed_paired_test(np.array([3.0, 1.0, -1.0, 2.0, 4.0]), np.zeros(5))
    assert t.p_value == pytest.approx(6 / 32)
    # 5 seeds all one way: the smallest p an exact test can give at 5 seeds, 2/32 > 0.05
    t = seed_paired_test(np.arange(1.0, 6.0), np.zeros(5))
    assert t.p_value == pytest.approx(0.0625) == min_seed_p_value(5)
    assert metric_verdict(t.p_value, t.sign, "greater") == INCONCLUSIVE
    down = seed_paired_test(np.zeros(6), np.arange(1.0, 7.0))
    assert down.p_value == pytest.approx(2 / 64) and down.sign == -1
    assert metric_verdict(down.p_value, down.sign, "less") == HOLDS


def test_seed_paired_test_one_sided_golden_p_values():
    # 5 seeds all one way: one pattern of 32 reaches mean >= observed -> 1/32 < 0.05
    t = seed_paired_test(np.arange(1.0, 6.0), np.zeros(5), alternative="greater")
    assert t.p_value == pytest.approx(1 / 32) and t.test.endswith("one-sided (greater)")
    assert seed_paired_test(np.arange(1.0, 6.0), np.zeros(5), alternative="less").p_value == 1.0
    # differences 3, 1, -1, 2, 4 (observed sum 9): sums >= 9 are {} , {1a}, {1b} -> 3 of 32
    t = seed_paired_test(np.array([3.0, 1.0, -1.0, 2.0, 4.0]), np.zeros(5), alternative="greater")
    assert t.p_value == pytest.approx(3 / 32)
    # a zero mean with non-zero differences (+1, -1): the 4 patterns give means 0, 1, -1, 0,
    # three of them >= 0 (no two-sided short cut to p = 1)
    t = seed_paired_test(np.array([1.0, -1.0]), np.zeros(2), alternative="greater")
    assert t.p_value == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="alternative"):
        seed_paired_test(np.ones(3), np.zeros(3), alternative="up")


def test_seed_paired_test_edge_cases_and_min_p():
    assert seed_paired_test(np.ones(4), np.ones(4)).p_value == 1.0
    one = seed_paired_test(np.array([2.0]), np.array([1.0]))
    assert one.p_value == 1.0 and np.isnan(one.effect_size)  # 2 patterns, both extreme
    none = seed_paired_test(np.array([np.nan, 1.0]), np.array([0.0, np.nan]))
    assert none.n == 0 and np.isnan(none.p_value)
    assert [min_seed_p_value(k) for k in (1, 2, 3, 5, 6)] == [1.0, 0.5, 0.25, 0.0625, 0.03125]
    with pytest.raises(ValueError, match="n_seeds"):
        min_seed_p_value(0)
    # beyond the exact limit: random patterns, still a valid p in (0, 1]
    rng = seed_paired_test(np.arange(1.0, 21.0), np.zeros(20), n_permutations=1000, seed=1)
    assert rng.p_value == pytest.approx(1 / 1001)


def test_hierarchical_bootstrap_without_within_seed_spread_is_the_seed_bootstrap():
    # seed means 0, 1, 2, every image of a seed equal to its seed's mean (sizes 2, 5, 3):
    # the resampled images change nothing, so the bootstrap mean is the mean of 3 seeds drawn
    # with replacement: sums 0..6 with counts 1, 3, 6, 7, 6, 3, 1 (of 27). Its 2.5% and 97.5%
    # quantiles are sums 0 and 6 (P(sum = 0) = 1/27 > 2.5%), so the interval is [0, 2]; its
    # standard error is sqrt(var0([0, 1, 2]) / 3) = sqrt(2/9).
    x = np.repeat([0.0, 1.0, 2.0], [2, 5, 3])
    g = np.repeat([10, 11, 12], [2, 5, 3])
    ci = bootstrap_ci(x, groups=g, n_resamples=20000, seed=0)
    assert ci.estimate == pytest.approx(1.0)
    assert (ci.low, ci.high) == (0.0, 2.0)
    assert ci.se == pytest.approx(np.sqrt(2 / 9), rel=0.03)
    # the same seeds with one image each: the hierarchical and the seed-level bootstrap agree
    flat = bootstrap_ci(x, groups=g, n_resamples=20000, seed=5)
    seeds_only = bootstrap_ci(np.array([0.0, 1.0, 2.0]), groups=np.array([10, 11, 12]),
                              n_resamples=20000, seed=5)
    assert (flat.low, flat.high, flat.se) == (seeds_only.low, seeds_only.high, seeds_only.se)


def test_hierarchical_bootstrap_variance_has_both_levels():
    # K seeds with means mu_k and within-seed sd s_k (ddof 0) over n_k images: the bootstrap
    # mean of K resampled seeds, each with resampled images, has variance
    # (1/K) * (var0(mu) + mean_k(s_k^2 / n_k)) -- the seed level and the image level
    rng = np.random.default_rng(3)
    mus, n_k = np.array([0.0, 1.0, 3.0, 4.0]), 8
    parts = []
    for mu in mus:
        z = rng.standard_normal(n_k)
        parts.append(mu + 2.0 * (z - z.mean()) / z.std())  # exactly mean mu, sd 2
    x, g = np.concatenate(parts), np.repeat(np.arange(4), n_k)
    expected = np.sqrt((np.var(mus) + 4.0 / n_k) / 4)
    ci = bootstrap_ci(x, groups=g, n_resamples=40000, seed=0)
    assert ci.estimate == pytest.approx(mus.mean())
    assert ci.se == pytest.approx(expected, rel=0.03)
    # an image-only bootstrap ignores the seed level: much narrower
    assert bootstrap_ci(x, n_resamples=4000, seed=0).se < 0.6 * expected
    # paired: S - B with the same structure in the differences gives the same interval width
    d = paired_bootstrap_ci(x + 1.0, np.ones_like(x) * 1.0, groups=g, n_resamples=40000, seed=0)
    assert d.se == pytest.approx(expected, rel=0.03)
