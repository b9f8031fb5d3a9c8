"""The three hypotheses, their metrics, the tests of S against B and the verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kdexplain.concepts.settings import ConceptSettings
from kdexplain.concepts.stats import (
    min_seed_p_value,
    paired_bootstrap_ci,
    paired_test,
    seed_paired_test,
    spread_test,
)
from kdexplain.concepts.verdicts import INCONCLUSIVE, holm, hypothesis_verdict, metric_verdict
from kdexplain.vocabulary import COMPARED_ROLES, CONTROL

__all__ = ["HYPOTHESES", "METRICS", "ROLE_LABELS", "Hypothesis", "control_tests",
           "hypothesis_tests"]

#: One-letter labels of the model roles (ROLES, from kdexplain.vocabulary, is the table order).
ROLE_LABELS: dict[str, str] = {"teacher": "T", "student": "S", "baseline": "B", "control": "C"}

#: Model-level metrics: name -> (per-image source, statistic over images).
METRICS: dict[str, tuple[str, str]] = {
    "N_fg": ("N_fg", "mean"),
    "N_bg": ("N_bg", "mean"),
    "fg_ratio": ("fg_ratio", "mean"),
    "D_mean": ("peak_distance", "mean"),
    "D_std": ("peak_distance", "std"),
    "D_var": ("peak_distance", "var"),
    "rho": ("rho", "mean"),
}


@dataclass(frozen=True)
class Hypothesis:
    number: int
    claim: str
    metrics: tuple[tuple[str, str], ...]  # (metric, "greater" | "less")


#: The three hypotheses of Cheng et al. and the direction each metric should take (S vs B).
HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis(1, "S encodes more valid knowledge than B (more foreground concepts, fewer "
                   "background concepts, a larger foreground ratio)",
                (("N_fg", "greater"), ("N_bg", "less"), ("fg_ratio", "greater"))),
    Hypothesis(2, "S learns its concepts more simultaneously and faster than B (smaller "
                   "mean and spread of the weight distance at the foreground-concept peak)",
                (("D_mean", "less"), ("D_std", "less"))),
    Hypothesis(3, "S optimises more stably than B, with fewer detours (a larger share of "
                   "the foreground concepts ever learned is kept at the end)",
                (("rho", "greater"),)),
)


def _seed_values(values: np.ndarray, groups: np.ndarray, statistic: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed statistic over each seed's values: (seeds (K,), values (K,)), seeds sorted."""
    fn = {"mean": np.mean, "std": np.std, "var": np.var}[statistic]
    seeds = np.unique(groups)
    return seeds, np.array([fn(values[groups == g]) for g in seeds], dtype=np.float64)


def _row(hyp: Hypothesis, metric: str, direction: str, level: str, seed: int | None,
         s_val: float, b_val: float, diff: Any, res: Any, settings: ConceptSettings) -> dict:
    return {
        "hypothesis": hyp.number, "metric": metric,
        "direction": "S > B" if direction == "greater" else "S < B",
        "level": level, "seed": seed, "S": s_val, "B": b_val, "diff": diff.estimate,
        "diff_ci_low": diff.low, "diff_ci_high": diff.high, "median_diff": res.median_diff,
        "effect_size": res.effect_size, "effect_size_kind": res.effect_size_kind,
        "test": res.test, "statistic": res.statistic, "n_pairs": res.n,
        "min_p": min_seed_p_value(res.n_nonzero) if res.n_nonzero else float("nan"),
        "p_value": res.p_value, "_sign": res.sign, "_direction": direction,
        "verdict": metric_verdict(res.p_value, res.sign, direction, settings.alpha),
    }


def _seed_level(hyp: Hypothesis, metric: str, direction: str, sv: np.ndarray,
                bv: np.ndarray, groups: np.ndarray, settings: ConceptSettings) -> dict:
    """S against B paired by seed: per-seed values, exact sign-flip test, hierarchical CI."""
    statistic = METRICS[metric][1]
    _, s_seed = _seed_values(sv, groups, statistic)
    _, b_seed = _seed_values(bv, groups, statistic)
    res = seed_paired_test(s_seed, b_seed, seed=settings.stats_seed)
    diff = paired_bootstrap_ci(sv, bv, groups=groups, statistic=statistic,
                               n_resamples=settings.n_resamples, level=settings.ci_level,
                               seed=settings.stats_seed)
    return _row(hyp, metric, direction, "seeds", None, float(s_seed.mean()),
                float(b_seed.mean()), diff, res, settings)


def control_tests(per_image: pd.DataFrame, settings: ConceptSettings) -> pd.DataFrame:
    """The random-teacher control C against B and S against C, paired by seed.

    The same exact sign-flip test and hierarchical interval as the verdicts' S-B rows, for
    every metric of every hypothesis. A difference S - B that C - B repeats does not come
    from the teacher's knowledge; S - C is the part that does. Holm's correction runs over
    each comparison's metrics of a hypothesis.

    Returns
    -------
    DataFrame
        One row per (comparison, hypothesis, metric): ``comparison`` ("C vs B", "S vs C"),
        ``first``, ``second`` (the per-seed means compared), ``diff`` with its interval,
        ``p_value``, ``p_holm``, ``n_pairs``, ``verdict`` (of the metric, in the hypothesis'
        direction with the control in the place of S or of B).
    """
    frames = {r: per_image[per_image["role"] == r].set_index(["seed", "image_key"])
              for r in (*COMPARED_ROLES, CONTROL)}
    rows = []
    for name, first, second in (("C vs B", "control", "baseline"),
                                ("S vs C", "student", "control")):
        a, b = frames[first], frames[second]
        idx = a.index.intersection(b.index)
        groups = np.asarray(idx.get_level_values("seed"))
        if len(set(groups.tolist())) < 2:
            continue
        for hyp in HYPOTHESES:
            for metric, direction in hyp.metrics:
                source = METRICS[metric][0]
                av = a.loc[idx, source].to_numpy(dtype=np.float64)
                bv = b.loc[idx, source].to_numpy(dtype=np.float64)
                keep = np.isfinite(av) & np.isfinite(bv)
                row = _seed_level(hyp, metric, direction, av[keep], bv[keep], groups[keep],
                                  settings)
                row = {k: v for k, v in row.items() if not k.startswith("_")}
                row["first"], row["second"] = row.pop("S"), row.pop("B")
                row["direction"] = row["direction"].replace("S", ROLE_LABELS[first][0]) \
                    .replace("B", ROLE_LABELS[second])
                rows.append({"comparison": name, **row})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    p_holm = np.full(len(out), np.nan)
    for _, family in out.groupby(["comparison", "hypothesis"]):
        p_holm[family.index] = holm(family["p_value"].to_numpy(dtype=np.float64))
    out.insert(out.columns.get_loc("p_value") + 1, "p_holm", p_holm)
    return out.drop(columns=["seed", "level"])


def _image_level(hyp: Hypothesis, metric: str, direction: str, sv: np.ndarray,
                 bv: np.ndarray, seed: int, settings: ConceptSettings) -> dict:
    """S against B over the images of one run (a within-run diagnostic with several seeds)."""
    statistic = METRICS[metric][1]
    if statistic == "mean":
        res = paired_test(sv, bv)
    else:
        res = spread_test(sv, bv, n_permutations=settings.n_permutations,
                          seed=settings.stats_seed)
    diff = paired_bootstrap_ci(sv, bv, statistic=statistic, n_resamples=settings.n_resamples,
                               level=settings.ci_level, seed=settings.stats_seed)
    fn = {"mean": np.mean, "std": np.std, "var": np.var}[statistic]
    s_val = float(fn(sv)) if sv.size else float("nan")
    b_val = float(fn(bv)) if bv.size else float("nan")
    return _row(hyp, metric, direction, "images", seed, s_val, b_val, diff, res, settings)


def hypothesis_tests(per_image: pd.DataFrame, settings: ConceptSettings
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The metric tests and the hypotheses' verdicts.

    With two or more seeds the verdicts come from the seed-level rows (``level`` "seeds",
    ``n_pairs`` = seeds); the image-level rows of each seed are within-run diagnostics. With
    one seed the image-level rows carry the verdicts, about those two networks only.
    """
    s = per_image[per_image["role"] == "student"].set_index(["seed", "image_key"])
    b = per_image[per_image["role"] == "baseline"].set_index(["seed", "image_key"])
    idx = s.index.intersection(b.index)
    s, b = s.loc[idx], b.loc[idx]
    groups = np.asarray(idx.get_level_values("seed"))
    seeds = sorted(set(groups.tolist()))
    rows = []
    for hyp in HYPOTHESES:
        for metric, direction in hyp.metrics:
            source = METRICS[metric][0]
            sv = s[source].to_numpy(dtype=np.float64)
            bv = b[source].to_numpy(dtype=np.float64)
            keep = np.isfinite(sv) & np.isfinite(bv)
            sv, bv, g = sv[keep], bv[keep], groups[keep]
            if len(seeds) > 1:
                rows.append(_seed_level(hyp, metric, direction, sv, bv, g, settings))
            for seed in seeds:
                mine = g == seed
                rows.append(_image_level(hyp, metric, direction, sv[mine], bv[mine], seed,
                                         settings))
    tests = pd.DataFrame(rows)
    if tests.empty:
        return tests, pd.DataFrame(columns=["hypothesis", "claim", "verdict", "support",
                                            "level", "n_pairs", "scope", "explanation"])
    tests["seed"] = tests["seed"].astype("Int64")
    carries = (tests["level"] == "seeds") if len(seeds) > 1 else tests["level"] == "images"
    tests.insert(tests.columns.get_loc("seed") + 1, "carries_verdict", carries)
    p_holm = np.full(len(tests), np.nan)
    for _, family in tests.groupby([tests["carries_verdict"], tests["seed"].fillna(-1)]):
        p_holm[family.index] = holm(family["p_value"].to_numpy(dtype=np.float64))
    tests.insert(tests.columns.get_loc("p_value") + 1, "p_holm", p_holm)
    verdicts = _verdicts(tests[tests["carries_verdict"]], seeds, settings)
    return tests.drop(columns=["_sign", "_direction"]), verdicts


def _verdicts(tests: pd.DataFrame, seeds: list[int], settings: ConceptSettings) -> pd.DataFrame:
    """One row per hypothesis from the rows that carry the verdicts."""
    n_seeds = len(seeds)
    if n_seeds > 1:
        scope = (f"{n_seeds} training runs (seeds), S paired with B by seed: the verdict is "
                 "about distillation against training from scratch in this setting")
    else:
        scope = (f"one training run (seed {seeds[0]}): the verdict covers those two networks "
                 "only (S and B of that run, compared over images), not distillation in "
                 "general; run several seeds for a claim about the method")
    out = []
    for hyp in HYPOTHESES:
        t = tests[tests["hypothesis"] == hyp.number]
        verdict = hypothesis_verdict(t["p_value"].tolist(), t["_sign"].tolist(),
                                     t["_direction"].tolist(), settings.alpha)
        n_hold = int((t["verdict"] == "holds").sum())
        parts = [f"{r.metric} {r.direction}: S {r.S:.4g} vs B {r.B:.4g}, p = {r.p_value:.3g} "
                 f"({r.verdict})" for r in t.itertuples()]
        explanation = "; ".join(parts)
        min_p = t["min_p"].min() if n_seeds > 1 else float("nan")
        if verdict == INCONCLUSIVE and np.isfinite(min_p) and min_p >= settings.alpha:
            explanation += (f". With {n_seeds} seeds the smallest p the exact test can give is "
                            f"{min_p:.3g} >= alpha = {settings.alpha:g}: inconclusive means too "
                            "few runs, not no effect; read the differences and their intervals")
        out.append({"hypothesis": hyp.number, "claim": hyp.claim, "verdict": verdict,
                    "support": f"{n_hold} of {len(t)} metrics hold",
                    "level": "seeds" if n_seeds > 1 else "images",
                    "n_pairs": int(t["n_pairs"].min()) if len(t) else 0, "scope": scope,
                    "explanation": explanation})
    return pd.DataFrame(out)
