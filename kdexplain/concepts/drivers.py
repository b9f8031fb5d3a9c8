"""What drives the direction of ``D_mean``: :func:`distance_drivers`.

Hypothesis 2 compares ``D_mean``, the mean weight distance ``d(m^)`` at which each image's
foreground concepts peak, between S and B. Three things other than "how fast the concepts
are learned" can set the sign of S − B:

- **the measure**: the path length over optimiser steps (docs/method.md section 4) and the paper's per-epoch
  form weigh the same trajectory differently; if they disagree, the measure decides;
- **the schedule**: a network whose weights travel further in total (a larger learning rate,
  more steps, Adam's constant-size steps) reaches any point of its training at a larger
  distance. ``d(m^) / d(M)``, the share of the whole path travelled at the peak, removes
  that; if S − B changes sign there, the total path length decided;
- **the two-phase student**: a feature-distilled S trains only the layers up to the
  distilled one in phase 1, so its path and its epochs are not B's. The peak's position in
  *epochs* (``m^`` as a share of the model's training) says whether S peaks earlier in time,
  whatever the distance.

Each row is the same seed-level test as the verdicts (S paired with B by seed, exact
sign-flip, hierarchical bootstrap interval), or the image-level Wilcoxon test with one seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kdexplain.concepts.result import ConceptAnalysis
from kdexplain.concepts.stats import paired_bootstrap_ci, paired_test, seed_paired_test
from kdexplain.vocabulary import COMPARED_ROLES

__all__ = ["DISTANCE_FORMS", "distance_drivers", "drivers_sentence"]

#: (name, what it measures) of each form of the peak's position.
DISTANCE_FORMS: tuple[tuple[str, str], ...] = (
    ("d_step", "d(m^), path length over optimiser steps (docs/method.md section 4)"),
    ("d_epoch", "d(m^), the paper's per-epoch form"),
    ("share_step", "d(m^) / d(M): share of the whole path (per step) travelled at the peak"),
    ("share_epoch", "d(m^) / d(M), per-epoch form"),
    ("share_epochs", "m^ / M: the peak's epoch as a share of the model's training"),
)


def _forms(per_image: pd.DataFrame, last_epoch: dict[str, float]) -> pd.DataFrame:
    df = per_image[["seed", "role", "image_key"]].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for form in ("step", "epoch"):
            peak = per_image[f"peak_distance_{form}"].to_numpy(dtype=np.float64)
            total = per_image[f"total_distance_{form}"].to_numpy(dtype=np.float64)
            df[f"d_{form}"] = peak
            df[f"share_{form}"] = np.where(total > 0, peak / total, np.nan)
        last = per_image["role"].map(last_epoch).to_numpy(dtype=np.float64)
        peak_epoch = per_image["peak_epoch"].to_numpy(dtype=np.float64)
        df["share_epochs"] = np.where(last > 0, peak_epoch / last, np.nan)
    # an image left out of D_mean (no foreground concept) is left out here too
    df.loc[~np.isfinite(per_image["peak_distance"].to_numpy(dtype=np.float64)),
           [f for f, _ in DISTANCE_FORMS]] = np.nan
    return df


def distance_drivers(analysis: ConceptAnalysis) -> pd.DataFrame:
    """S against B on every form of the peak's position (see the module docstring).

    Returns
    -------
    DataFrame
        One row per form of :data:`DISTANCE_FORMS`: ``form``, ``meaning``, ``level``
        (``"seeds"`` or ``"images"``), ``n_pairs``, ``S``, ``B`` (means), ``diff`` (S − B)
        with ``diff_ci_low``/``diff_ci_high``, ``p_value``, ``sign`` (+1 when S is larger,
        -1 when smaller, 0 when equal) and ``agrees`` (the sign matches that of the form the
        verdict's ``D_mean`` uses: ``d_step``, or ``d_epoch`` with ``distance="epoch"``).
        Empty without S and B.
    """
    pi = analysis.per_image
    if not set(COMPARED_ROLES) <= set(pi["role"]):
        return pd.DataFrame()
    last = {}
    for role in COMPARED_ROLES:
        seed = next(s for s in analysis.seeds if role in analysis.models.get(s, {}))
        last[role] = float(analysis.models[seed][role].epochs[-1])
    df = _forms(pi, last)
    s = df[df["role"] == "student"].set_index(["seed", "image_key"])
    b = df[df["role"] == "baseline"].set_index(["seed", "image_key"])
    idx = s.index.intersection(b.index)
    s, b = s.loc[idx], b.loc[idx]
    groups = np.asarray(idx.get_level_values("seed"))
    several = len(set(groups.tolist())) > 1
    settings = analysis.settings
    rows = []
    for form, meaning in DISTANCE_FORMS:
        sv, bv = s[form].to_numpy(dtype=np.float64), b[form].to_numpy(dtype=np.float64)
        keep = np.isfinite(sv) & np.isfinite(bv)
        sv, bv, g = sv[keep], bv[keep], groups[keep]
        if sv.size == 0:
            continue  # e.g. no per-epoch distance was recorded
        if several:
            seeds = np.unique(g)
            s_seed = np.array([sv[g == k].mean() for k in seeds])
            b_seed = np.array([bv[g == k].mean() for k in seeds])
            res = seed_paired_test(s_seed, b_seed, seed=settings.stats_seed)
            s_val, b_val = float(s_seed.mean()), float(b_seed.mean())
        else:
            res = paired_test(sv, bv)
            s_val = float(sv.mean()) if sv.size else float("nan")
            b_val = float(bv.mean()) if bv.size else float("nan")
        ci = paired_bootstrap_ci(sv, bv, groups=g if several else None, statistic="mean",
                                 n_resamples=settings.n_resamples, level=settings.ci_level,
                                 seed=settings.stats_seed)
        rows.append({"form": form, "meaning": meaning,
                     "level": "seeds" if several else "images", "n_pairs": res.n,
                     "S": s_val, "B": b_val, "diff": ci.estimate, "diff_ci_low": ci.low,
                     "diff_ci_high": ci.high, "p_value": res.p_value,
                     "sign": int(np.sign(ci.estimate)) if np.isfinite(ci.estimate) else 0})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    ref = "d_epoch" if settings.distance == "epoch" else "d_step"
    ref_sign = out.loc[out["form"] == ref, "sign"]
    out["agrees"] = out["sign"] == (ref_sign.iloc[0] if len(ref_sign) else 0)
    return out


def drivers_sentence(drivers: pd.DataFrame) -> str:
    """What the table of :func:`distance_drivers` says, in one paragraph."""
    if drivers.empty:
        return "Without S and B there is no direction of D_mean to explain."
    sign = dict(zip(drivers["form"], drivers["sign"], strict=True))
    word = {1: "larger for S than for B", -1: "smaller for S than for B", 0: "the same for S and B"}
    ref = "d_step" if "d_step" in sign else next(iter(sign))
    how = "over optimiser steps" if ref == "d_step" else "in the per-epoch form"
    parts = [f"Measured {how}, the distance at the peak is {word[sign[ref]]}"]
    if "d_epoch" in sign and ref != "d_epoch":
        if sign["d_epoch"] != sign[ref]:
            parts.append(f"in the per-epoch form it is {word[sign['d_epoch']]}, so the measure "
                         "decides the direction")
        else:
            parts.append("the per-epoch form agrees, so the measure does not decide it")
    share = "share_step" if ref == "d_step" else "share_epoch"
    if share in sign:
        if sign[share] != sign[ref]:
            parts.append(f"as a share of each network's whole path it is {word[sign[share]]}: "
                         "the total length of the path, which the schedule and the optimiser "
                         "set, drives the direction")
        else:
            parts.append("as a share of each network's whole path it keeps its direction, so "
                         "the total path length does not drive it")
    if "share_epochs" in sign:
        parts.append("in time (the peak's epoch as a share of training) the peak comes "
                     + {1: "later for S", -1: "earlier for S", 0: "at the same point"}[
                         sign["share_epochs"]]
                     + "; where this differs from the distance, S's weights moved at another "
                     "pace than B's (a two-phase student's phase 1 moves only the layers up to "
                     "the distilled one)")
    return ("; ".join(parts) + ". Read the intervals: a difference whose interval holds zero "
            "has no established direction.")
