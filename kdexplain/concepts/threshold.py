"""How the verdicts move with the concept threshold b: :func:`threshold_curve`.

The threshold ``b`` (a cell is a concept when ``H_bar - H_i > b``, docs/method.md section 4) was set
for the original estimator; an estimator with a wider within-image entropy range puts more
cells above the same ``b``. A verdict that flips inside a reasonable range of ``b`` says
more about the threshold than about distillation, so the report recomputes every
verdict-carrying test over a grid of thresholds (0.1 to 0.4 nats by default) and calls a
hypothesis whose verdict changes on that grid *fragile*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kdexplain.concepts.analysis import analyze_concepts
from kdexplain.concepts.runs import RunEntropies
from kdexplain.concepts.settings import ConceptSettings

__all__ = ["DEFAULT_THRESHOLDS", "ThresholdCurve", "threshold_curve"]

#: The grid of thresholds b (nats) of the curve: 0.1 to 0.4 in steps of 0.05.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


@dataclass
class ThresholdCurve:
    """The verdict-carrying tests at each threshold.

    Attributes
    ----------
    tests : DataFrame
        One row per (b, metric): ``b``, ``hypothesis``, ``metric``, ``direction``,
        ``level``, ``n_pairs``, ``S``, ``B``, ``diff`` (S - B) with ``diff_ci_low`` /
        ``diff_ci_high``, ``effect_size``, ``p_value`` and the metric's ``verdict``.
    verdicts : DataFrame
        One row per (b, hypothesis): ``b``, ``hypothesis``, ``verdict``.
    robustness : DataFrame
        One row per hypothesis: ``hypothesis``, ``verdicts`` (the distinct verdicts over the
        grid, in order of b), ``fragile`` (True when there is more than one), and
        ``verdict_at_b`` (at the analysis' own threshold).
    thresholds : list of float
    own_threshold : float
    """

    tests: pd.DataFrame
    verdicts: pd.DataFrame
    robustness: pd.DataFrame
    thresholds: list[float]
    own_threshold: float


def threshold_curve(runs: RunEntropies | Sequence[RunEntropies],
                    settings: ConceptSettings | None = None, *,
                    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                    teacher: RunEntropies | None = None) -> ThresholdCurve:
    """Recompute the analysis at every threshold of ``thresholds`` (and the settings' own).

    Only S and B are analysed (the teacher takes no part in the tests), with every other
    setting as given, so the same images, selection rule and tests are used at each ``b``.
    Note that the effective-image selection depends on the concepts, hence on ``b``.

    Parameters
    ----------
    runs, settings, teacher
        As for :func:`~kdexplain.concepts.analyze_concepts` (``teacher`` is accepted and
        left out: it does not enter a test).
    thresholds : sequence of float
        Values of ``b`` (nats), each > 0.

    Returns
    -------
    ThresholdCurve

    Raises
    ------
    ValueError
        An empty grid or a threshold that is not a positive number.
    """
    del teacher  # the tests compare S with B only
    settings = settings or ConceptSettings()
    grid = sorted({float(b) for b in thresholds} | {float(settings.concept_threshold)})
    if not thresholds or not all(np.isfinite(b) and b > 0 for b in grid):
        raise ValueError(f"thresholds must be positive numbers, got {list(thresholds)}")
    base = {k: v for k, v in settings.to_dict().items() if k != "concept_threshold"}
    tests, verdicts = [], []
    for b in grid:
        a = analyze_concepts(runs, ConceptSettings(concept_threshold=b, **base))
        if a.tests.empty:
            raise ValueError("the threshold curve compares S with B; "
                             + "; ".join(a.notes))
        t = a.tests[a.tests["carries_verdict"]]
        tests.append(t[["hypothesis", "metric", "direction", "level", "n_pairs", "S", "B",
                        "diff", "diff_ci_low", "diff_ci_high", "effect_size", "p_value",
                        "verdict"]].assign(b=b))
        verdicts.append(a.verdicts[["hypothesis", "verdict"]].assign(b=b))
    tests_df = pd.concat(tests, ignore_index=True)
    tests_df = tests_df[["b", *[c for c in tests_df.columns if c != "b"]]]
    verdicts_df = pd.concat(verdicts, ignore_index=True)[["b", "hypothesis", "verdict"]]
    return ThresholdCurve(tests=tests_df, verdicts=verdicts_df,
                          robustness=_robustness(verdicts_df, settings.concept_threshold),
                          thresholds=grid, own_threshold=float(settings.concept_threshold))


def _robustness(verdicts: pd.DataFrame, own_threshold: float) -> pd.DataFrame:
    """One row per hypothesis: its distinct verdicts over b, fragile, the verdict at b."""
    rows = []
    for hyp, sub in verdicts.groupby("hypothesis", sort=True):
        seen = list(dict.fromkeys(sub.sort_values("b")["verdict"]))
        own = sub.loc[np.isclose(sub["b"], own_threshold), "verdict"]
        rows.append({"hypothesis": int(hyp), "verdicts": " / ".join(seen),
                     "fragile": len(seen) > 1,
                     "verdict_at_b": own.iloc[0] if len(own) else None})
    return pd.DataFrame(rows, columns=["hypothesis", "verdicts", "fragile", "verdict_at_b"])


def robustness_from_tests(tests: pd.DataFrame, own_threshold: float, alpha: float = 0.05
                         ) -> pd.DataFrame:
    """:attr:`ThresholdCurve.robustness` from the curve's tests alone (``threshold_curve.csv``
    of a report): each hypothesis's verdict at each ``b`` by the same rule as the report's
    (:func:`~kdexplain.concepts.verdicts.hypothesis_verdict`), then its distinct verdicts."""
    from kdexplain.concepts.verdicts import hypothesis_verdict

    rows = []
    for (b, hyp), sub in tests.groupby(["b", "hypothesis"], sort=True):
        directions = ["greater" if d == "S > B" else "less" for d in sub["direction"]]
        # the test's sign: of the mean per-seed difference (= S - B of the seed means) at
        # the seed level, of the effect size (rank-biserial r) over images
        raw = np.where(sub["level"] == "seeds", sub["S"] - sub["B"], sub["effect_size"])
        signs = [int(np.sign(x)) if np.isfinite(x) else 0 for x in raw.astype(float)]
        rows.append({"b": float(b), "hypothesis": int(hyp), "verdict": hypothesis_verdict(
            sub["p_value"].astype(float).tolist(), signs, directions, alpha)})
    return _robustness(pd.DataFrame(rows, columns=["b", "hypothesis", "verdict"]), own_threshold)
