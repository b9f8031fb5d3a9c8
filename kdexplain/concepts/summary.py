"""Each metric summarised over images and seeds, with bootstrap intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kdexplain.concepts.hypotheses import METRICS, ROLE_LABELS
from kdexplain.concepts.settings import ConceptSettings
from kdexplain.concepts.stats import BootstrapCI, bootstrap_ci, paired_bootstrap_ci

__all__ = ["summarise"]


def _per_seed_value(df: pd.DataFrame, source: str, statistic: str) -> pd.Series:
    def f(x: pd.Series) -> float:
        x = x.to_numpy(dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return float("nan")
        if statistic == "mean":
            return float(x.mean())
        return float(x.var()) if statistic == "var" else float(x.std())
    return df.groupby("seed", sort=True)[source].apply(f)


def _from_epoch0(sub: pd.DataFrame, metric: str, settings: ConceptSettings
                 ) -> tuple[float, Any]:
    """Hypothesis 1's metric at epoch 0 (mean over seeds of the per-seed mean) and the change
    from it to the count checkpoint, with a hierarchical bootstrap interval; NaN for the
    metrics without an epoch-0 value (D_*, rho)."""
    nan = float("nan")
    column = f"{metric}_epoch0"
    if column not in sub or not np.isfinite(sub[column].to_numpy(dtype=np.float64)).any():
        return nan, BootstrapCI(nan, nan, nan, nan, settings.ci_level, 0)
    per_seed = _per_seed_value(sub, column, "mean").dropna()
    change = paired_bootstrap_ci(sub[metric].to_numpy(dtype=np.float64),
                                 sub[column].to_numpy(dtype=np.float64),
                                 groups=sub["seed"].to_numpy(), n_resamples=settings.n_resamples,
                                 level=settings.ci_level, seed=settings.stats_seed)
    return float(per_seed.mean()), change


def summarise(per_image: pd.DataFrame, roles: list[str], settings: ConceptSettings
               ) -> pd.DataFrame:
    rows = []
    for role in roles:
        sub = per_image[per_image["role"] == role]
        n_seeds = int(sub["seed"].nunique())
        for metric, (source, statistic) in METRICS.items():
            values = sub[source].to_numpy(dtype=np.float64)
            finite = np.isfinite(values)
            per_seed = _per_seed_value(sub, source, statistic).dropna()
            ci = bootstrap_ci(values, groups=sub["seed"].to_numpy(), statistic=statistic,
                              n_resamples=settings.n_resamples, level=settings.ci_level,
                              seed=settings.stats_seed)
            per_unit = statistic == "mean"
            sd_images = (float(np.std(values[finite], ddof=1))
                         if per_unit and finite.sum() > 1 else float("nan"))
            sd_seeds = float(per_seed.std(ddof=1)) if per_seed.size > 1 else float("nan")
            if per_seed.size > 1:
                spread, kind = sd_seeds, "sd over seeds"
            elif per_unit:
                spread, kind = sd_images, "sd over images"
            else:
                spread, kind = ci.se, "bootstrap se"
            epoch0, change = _from_epoch0(sub, metric, settings)
            # training moved the metric when its change from epoch 0 exceeds the spread of
            # the metric over seeds (undecided with one seed or without an epoch-0 value)
            moved = (bool(abs(change.estimate) > sd_seeds)
                     if np.isfinite(change.estimate) and np.isfinite(sd_seeds) else None)
            rows.append({
                "role": role, "label": ROLE_LABELS[role], "metric": metric,
                "epoch0": epoch0,
                "change_from_epoch0": change.estimate, "change_ci_low": change.low,
                "change_ci_high": change.high, "moved": moved,
                "value": float(per_seed.mean()) if per_seed.size else float("nan"),
                "spread": spread, "spread_kind": kind, "sd_images": sd_images,
                "sd_seeds": sd_seeds, "se": ci.se, "ci_low": ci.low, "ci_high": ci.high,
                "n_images": int(finite.sum()), "n_seeds": n_seeds,
            })
    return pd.DataFrame(rows)
