"""The decision rule: from the tests of S against B to a verdict per metric and per hypothesis
(see ``docs/metrics.md``).

- :func:`metric_verdict`: one metric's verdict at level ``alpha``.
- :func:`hypothesis_verdict`: a hypothesis's verdict from its metrics (intersection-union,
  with a Holm correction for "does not hold").
- :func:`holm`: Holm-Bonferroni adjusted p-values.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["HOLDS", "INCONCLUSIVE", "NOT_HOLDS", "holm", "hypothesis_verdict", "metric_verdict"]

HOLDS = "holds"
NOT_HOLDS = "does not hold"
INCONCLUSIVE = "inconclusive"

Direction = Literal["greater", "less"]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def metric_verdict(p_value: float, sign: int, direction: Direction, alpha: float = 0.05) -> str:
    """One metric's verdict at level ``alpha``.

    ``"holds"`` when ``p < alpha`` and S differs from B in the hypothesised ``direction``
    (``"greater"``: S > B, ``"less"``: S < B); ``"does not hold"`` when ``p < alpha`` the
    other way; ``"inconclusive"`` otherwise (including no data).
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    if not np.isfinite(p_value) or p_value >= alpha or sign == 0:
        return INCONCLUSIVE
    wanted = 1 if direction == "greater" else -1
    return HOLDS if sign == wanted else NOT_HOLDS


def hypothesis_verdict(p_values: list[float], signs: list[int], directions: list[Direction],
                       alpha: float = 0.05) -> str:
    """The overall verdict of a hypothesis from its metrics' tests.

    - ``"holds"``: every metric holds at ``alpha`` (an intersection-union test: requiring
      all components to be significant keeps the level at ``alpha`` without correction).
    - ``"does not hold"``: no metric holds, and at least one is significant in the opposite
      direction after a Holm correction over the hypothesis's metrics.
    - ``"inconclusive"``: anything else (nothing significant, or mixed evidence).
    """
    if not p_values:
        return INCONCLUSIVE
    raw = [metric_verdict(p, s, d, alpha) for p, s, d in zip(p_values, signs, directions, strict=True)]
    if all(v == HOLDS for v in raw):
        return HOLDS
    if any(v == HOLDS for v in raw):
        return INCONCLUSIVE
    adjusted = holm(np.asarray(p_values, dtype=np.float64))
    if any(metric_verdict(p, s, d, alpha) == NOT_HOLDS
           for p, s, d in zip(adjusted, signs, directions, strict=True)):
        return NOT_HOLDS
    return INCONCLUSIVE
