"""Per-image concept metrics of one network and the paired comparison of the two networks.

Built on :mod:`kdexplain.concepts` (docs/method.md section 4): ``H_bar`` pooled over the analysed
images of one network at one checkpoint, concept cells ``H_bar - H_i > b``, ``N_fg``,
``N_bg`` and ``fg_ratio``. Beside these *relative* counts, two *absolute* numbers per image:
the mean entropy of its foreground cells ``H_fg`` and of its background cells ``H_bg``, and
their difference ``bg_minus_fg = H_bg - H_fg`` (positive: the foreground is used more).

Three diagnostics say where the background concepts are and what the relative threshold
does: ``N_bg_near`` / ``N_bg_far`` split ``N_bg`` into background cells that touch the object
(8-neighbourhood on the grid, :func:`border_cells`) and the rest, and ``N_bg_shared`` /
``N_fg_shared`` count concepts against one threshold shared by both networks (the mean of
their two ``H_bar``), so that a shift of the whole background cannot hide in ``H_bar``.

The comparison pairs the two networks of one seed (one training run per condition, from the
same initial weights) on the same images (same pixels, same noise). The unit of replication
is the training run: each seed gives one difference ``spurious - neutral``, the mean over its
images, and the verdicts rest on the exact sign-flip test of these per-seed differences
(:func:`kdexplain.concepts.seed_paired_test`), Holm-corrected within each family of metrics
(:data:`GROUPS`) of one layer, image set and epoch. The interval of the mean difference
resamples seeds, then images (:func:`kdexplain.concepts.paired_bootstrap_ci`). The images of
one run are not independent evidence about the training condition: their Wilcoxon tests
(:func:`kdexplain.concepts.paired_test`), one per seed, are within-run diagnostics
(:func:`within_run_tests`), never pooled over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from kdexplain.concepts import (
    HOLDS,
    INCONCLUSIVE,
    background_entropy,
    concept_cells,
    count_concepts,
    foreground_ratio,
    holm,
    metric_verdict,
    min_seed_p_value,
    paired_bootstrap_ci,
    paired_test,
    region_means,
    seed_paired_test,
)

__all__ = ["EXPECTED", "GROUPS", "METRICS", "border_cells", "compare_conditions", "image_metrics",
           "shared_counts", "verdict", "within_run_tests"]

#: The per-image metrics, in table order.
METRICS = ("N_fg", "N_bg", "fg_ratio", "H_fg", "H_bg", "bg_minus_fg", "N_bg_near", "N_bg_far",
           "N_fg_shared", "N_bg_shared")

#: What kind of number each metric is.
GROUPS = {"N_fg": "docs/method.md section 4", "N_bg": "docs/method.md section 4", "fg_ratio": "docs/method.md section 4",
          "H_fg": "entropy", "H_bg": "entropy", "bg_minus_fg": "entropy",
          "N_bg_near": "diagnostic", "N_bg_far": "diagnostic",
          "N_fg_shared": "diagnostic", "N_bg_shared": "diagnostic"}

#: The sign of ``spurious - neutral`` expected if the spurious network relies on the
#: background and the measure sees it: more background concepts (wherever they are counted),
#: fewer foreground ones, a lower foreground share, a lower background entropy, a higher
#: foreground entropy, a smaller gap.
EXPECTED = {"N_fg": -1, "N_bg": +1, "fg_ratio": -1, "H_fg": +1, "H_bg": -1, "bg_minus_fg": -1,
            "N_bg_near": +1, "N_bg_far": +1, "N_fg_shared": -1, "N_bg_shared": +1}


def border_cells(foreground: np.ndarray) -> np.ndarray:
    """Background cells that touch the object: 8-neighbours of a foreground cell.

    Parameters
    ----------
    foreground : bool array (N, g, g)

    Returns
    -------
    bool array (N, g, g)
        True on background cells with at least one foreground cell among their 8
        neighbours (these cells hold the object's outline but less than half of it).
    """
    foreground = np.asarray(foreground, dtype=bool)
    if foreground.ndim != 3:
        raise ValueError(f"foreground must be (N, g, g), got shape {foreground.shape}")
    square = np.ones((1, 3, 3), dtype=bool)  # no growth across images
    return ndimage.binary_dilation(foreground, structure=square) & ~foreground


def shared_counts(entropy: np.ndarray, foreground: np.ndarray, h_bar: np.ndarray,
                  concept_threshold: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """``N_fg`` and ``N_bg`` against a given baseline entropy (e.g. one shared by two networks).

    Parameters
    ----------
    entropy : float array (N, g, g)
    foreground : bool array (N, g, g)
    h_bar : float array (N,)
        The baseline entropy to compare each image's cells against.
    concept_threshold : float

    Returns
    -------
    n_fg, n_bg : float arrays (N,)
        NaN where the grid or ``h_bar`` is NaN.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    h_bar = np.asarray(h_bar, dtype=np.float64)
    concepts = concept_cells(entropy[None], h_bar[None], concept_threshold)
    n_fg, n_bg = (a[0].astype(np.float64) for a in count_concepts(concepts, foreground))
    ok = np.isfinite(entropy).all(axis=(1, 2)) & np.isfinite(h_bar)
    return np.where(ok, n_fg, np.nan), np.where(ok, n_bg, np.nan)


def image_metrics(entropy: np.ndarray, foreground: np.ndarray, *,
                  concept_threshold: float = 0.2, baseline_entropy: str = "pooled",
                  shared_h_bar: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The concept metrics of one network at one checkpoint, per image.

    Parameters
    ----------
    entropy : float array (N, g, g)
        Cell entropies ``H_i`` (nats); a NaN grid marks an image without usable signal
        (``D0 = 0``), which gets NaN metrics and is left out of ``H_bar``.
    foreground : bool array (N, g, g)
    concept_threshold : float
        ``b``.
    baseline_entropy : {"pooled", "per_image"}
        ``H_bar`` pooled over the N images (docs/method.md section 4) or per image.
    shared_h_bar : float array (N,), optional
        A baseline entropy shared with another network; gives ``N_fg_shared`` and
        ``N_bg_shared`` (NaN without it).

    Returns
    -------
    dict of float arrays (N,)
        Every name of :data:`METRICS`, and ``H_bar`` (this network's own).
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    foreground = np.asarray(foreground, dtype=bool)
    if entropy.ndim != 3 or foreground.shape != entropy.shape:
        raise ValueError(f"entropy (N, g, g) and foreground (N, g, g) must match; got "
                         f"{entropy.shape} and {foreground.shape}")
    usable = np.isfinite(entropy).all(axis=(1, 2))
    grids = entropy[None]  # (1, N, g, g): one checkpoint
    h_bar = background_entropy(grids, foreground, baseline_entropy)  # (1, N)
    concepts = concept_cells(grids, h_bar, concept_threshold)
    n_fg, n_bg = count_concepts(concepts, foreground)
    n_fg, n_bg = n_fg[0].astype(np.float64), n_bg[0].astype(np.float64)
    near = border_cells(foreground)
    n_near = (concepts[0] & near).sum(axis=(1, 2)).astype(np.float64)
    h_fg, h_bg = (a[0] for a in region_means(grids, foreground))
    if shared_h_bar is not None:
        fg_shared, bg_shared = shared_counts(entropy, foreground, shared_h_bar,
                                             concept_threshold)
    else:
        fg_shared = bg_shared = np.full(len(entropy), np.nan)
    out = {
        "N_fg": n_fg,
        "N_bg": n_bg,
        "fg_ratio": foreground_ratio(n_fg, n_bg),
        "H_fg": h_fg,
        "H_bg": h_bg,
        "bg_minus_fg": h_bg - h_fg,
        "N_bg_near": n_near,
        "N_bg_far": n_bg - n_near,
        "N_fg_shared": fg_shared,
        "N_bg_shared": bg_shared,
        "H_bar": h_bar[0],
    }
    return {k: np.where(usable, v, np.nan) for k, v in out.items()}


def verdict(p_adjusted: float, sign: int, expected: int, seed_signs: list[int],
            alpha: float = 0.05) -> str:
    """One metric's verdict on its expected sign of ``spurious - neutral``, in the core's words.

    :func:`kdexplain.concepts.metric_verdict` (docs/method.md section 5.3) with one rule more:
    ``"holds"`` (``p_adjusted < alpha`` in the expected direction) becomes ``"inconclusive"``
    when some seed's mean difference points the other way. ``"does not hold"``: significant
    the other way; ``"inconclusive"`` otherwise.

    Parameters
    ----------
    p_adjusted : float
        Holm-adjusted p-value of the seed-level test.
    sign : int
        Sign of the mean difference ``spurious - neutral`` (-1, 0, +1).
    expected : {+1, -1}
        The sign expected if the measure sees the reliance on the background (:data:`EXPECTED`).
    seed_signs : list of int
        Sign of each seed's mean difference.
    alpha : float
    """
    if expected not in (1, -1):
        raise ValueError(f"expected must be +1 or -1, got {expected!r}")
    out = metric_verdict(p_adjusted, sign, "greater" if expected > 0 else "less", alpha)
    if out == HOLDS and any(s == -expected for s in seed_signs):
        return INCONCLUSIVE
    return out


def _paired_wide(per_image: pd.DataFrame):
    """``(layer, image_set, epoch), metric, s, b, seeds`` per block of ``per_image``."""
    keys = ["layer", "image_set", "epoch"]
    for key, df in per_image.groupby(keys, sort=False):
        wide = df.pivot_table(index=["seed", "image"], columns="condition",
                              values=list(METRICS), dropna=False)
        groups = wide.index.get_level_values("seed").to_numpy()
        for metric in METRICS:
            if (metric, "neutral") not in wide or (metric, "spurious") not in wide:
                raise ValueError(f"per-image table lacks one condition for {key[0]}/{key[1]}/"
                                 f"epoch {key[2]}: both 'neutral' and 'spurious' are needed")
            b = wide[(metric, "neutral")].to_numpy(dtype=float)
            s = wide[(metric, "spurious")].to_numpy(dtype=float)
            yield key, metric, s, b, groups


def _seed_masks(s: np.ndarray, b: np.ndarray, groups: np.ndarray
                ) -> list[tuple[int, np.ndarray]]:
    """``(seed, mask)`` per seed: that seed's image pairs where both values are finite."""
    both = np.isfinite(s) & np.isfinite(b)
    return [(int(k), (groups == k) & both) for k in np.unique(groups)]


def _mean(x: np.ndarray, mask: np.ndarray) -> float:
    return float(x[mask].mean()) if mask.any() else float("nan")


def compare_conditions(per_image: pd.DataFrame, *, n_resamples: int = 2000,
                       alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """The comparison ``spurious - neutral`` per (layer, image set, epoch, metric), by seed.

    Per seed, the two networks' values are averaged over the images where both are finite;
    the per-seed differences are tested with the exact two-sided sign-flip test (smallest p
    ``2 / 2^n`` for n seeds: 0.0078 at 8). Holm's correction runs within each family of
    :data:`GROUPS` (the docs/method.md section 4 counts, the entropies, the diagnostics) of one layer, image
    set and epoch: each family answers its own question about one image set.

    Parameters
    ----------
    per_image : DataFrame
        One row per (seed, condition, layer, image_set, epoch, image) with the columns of
        :data:`METRICS` (as written by the pipeline).
    n_resamples : int
        Bootstrap resamples.
    alpha : float
        Level of the tests and of the verdicts (after Holm's correction).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    DataFrame
        One row per (layer, image_set, epoch, metric): ``neutral`` and ``spurious`` (means
        over seeds of the per-seed means), ``diff`` (mean of the per-seed differences),
        ``diff_ci_low``/``diff_ci_high`` (95% hierarchical bootstrap: seeds, then images),
        ``per_seed_diff`` (text), ``n_pairs`` (seeds), ``n_images`` (image pairs in all),
        ``min_p`` (the smallest p the seed-level test can give), ``p_value`` (sign-flip over
        seeds), ``p_holm``, ``effect_size`` (Cohen's d_z over seeds), ``group``, ``expected``
        (``+``/``-``), ``verdict``.
    """
    rows = []
    for (layer, image_set, epoch), metric, s, b, groups in _paired_wide(per_image):
        masks = _seed_masks(s, b, groups)
        s_k = np.array([_mean(s, m) for _, m in masks])
        b_k = np.array([_mean(b, m) for _, m in masks])
        test = seed_paired_test(s_k, b_k)
        ci = paired_bootstrap_ci(s, b, groups=groups, n_resamples=n_resamples, seed=seed)
        seed_diffs = s_k - b_k
        rows.append({
            "layer": layer, "image_set": image_set, "epoch": int(epoch), "metric": metric,
            "neutral": float(np.nanmean(b_k)), "spurious": float(np.nanmean(s_k)),
            "diff": ci.estimate, "diff_ci_low": ci.low, "diff_ci_high": ci.high,
            "per_seed_diff": " / ".join(f"{d:+.3g}" for d in seed_diffs),
            "seed_signs": [int(np.sign(d)) if np.isfinite(d) else 0 for d in seed_diffs],
            "n_pairs": test.n, "n_images": int(sum(m.sum() for _, m in masks)),
            "min_p": min_seed_p_value(test.n),
            "p_value": test.p_value, "effect_size": test.effect_size, "sign": test.sign,
            "group": GROUPS[metric], "expected": "+" if EXPECTED[metric] > 0 else "-",
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = np.nan
    for _, idx in out.groupby(["epoch", "layer", "image_set", "group"]).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"].to_numpy(dtype=float))
    out["verdict"] = [
        verdict(r.p_holm, int(r.sign), EXPECTED[r.metric], r.seed_signs, alpha)
        for r in out.itertuples()]
    return out.drop(columns=["seed_signs", "sign"])


def within_run_tests(per_image: pd.DataFrame) -> pd.DataFrame:
    """Within-run diagnostics: the images of one seed, ``spurious - neutral``, one test each.

    Given the two networks of a seed, its images are independent draws, so a Wilcoxon
    signed-rank test over them (:func:`kdexplain.concepts.paired_test`) says whether *those
    two networks* differ; it says nothing about the training condition, and no verdict
    rests on it.

    Returns
    -------
    DataFrame
        One row per (layer, image_set, epoch, metric, seed): ``neutral``, ``spurious``,
        ``diff`` (means over the seed's image pairs), ``n_pairs`` (images), ``p_value``
        (Wilcoxon), ``effect_size`` (rank-biserial r).
    """
    rows = []
    for (layer, image_set, epoch), metric, s, b, groups in _paired_wide(per_image):
        for k, m in _seed_masks(s, b, groups):
            test = paired_test(s[m], b[m])
            rows.append({
                "layer": layer, "image_set": image_set, "epoch": int(epoch), "metric": metric,
                "seed": k, "neutral": _mean(b, m), "spurious": _mean(s, m),
                "diff": _mean(s - b, m), "n_pairs": test.n, "p_value": test.p_value, "effect_size": test.effect_size,
            })
    return pd.DataFrame(rows)
