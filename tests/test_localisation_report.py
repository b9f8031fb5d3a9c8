"""The localisation page's spurious-background comparison: per-seed differences and the
seed-level test, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyses.localisation.report import answer, spurious_differences, spurious_table


def _per_image(deltas: dict[int, float], n_images: int = 3) -> pd.DataFrame:
    """Spurious-group rows: neutral = 0.3 + 0.01 image, spurious = neutral + deltas[seed]."""
    rows = []
    for seed, d in deltas.items():
        for i in range(n_images):
            base = 0.3 + 0.01 * i
            for network, v in (("neutral", base), ("spurious", base + d)):
                rows.append({"group": "spurious", "set": "tied", "method": "PE layer",
                             "seed": seed, "image": i, "network": network,
                             "RelevanceMassAccuracy": v})
    return pd.DataFrame(rows)


def test_spurious_differences_test_the_seeds_not_the_images():
    deltas = {s: -0.01 * (s + 1) for s in range(5)}  # every seed lower
    diff = spurious_differences(_per_image(deltas), "RelevanceMassAccuracy")
    row = diff.iloc[0]
    assert row["diff"] == pytest.approx(np.mean(list(deltas.values())))
    assert row.n_seeds == 5 and row.all_seeds_lower
    # exact two-sided sign-flip over 5 seeds of one sign: 2 / 2^5
    assert row.p_value == pytest.approx(2 / 32)
    assert "0.062" in spurious_table(diff) and "sign-flip p (seeds)" in spurious_table(diff)
    # one seed the other way: not "in every seed", and a larger p
    mixed = spurious_differences(_per_image({**deltas, 2: +0.03}), "RelevanceMassAccuracy")
    assert not mixed.iloc[0].all_seeds_lower and mixed.iloc[0].p_value > 2 / 32


def test_answer_names_the_seeds_and_their_p():
    diff = spurious_differences(_per_image({s: -0.02 for s in range(8)}),
                                "RelevanceMassAccuracy")
    quick = pd.DataFrame([
        {"group": "quickstart", "network": role, "method": m, "seed": 0, "image": 0,
         "mask_share": 0.2, "RelevanceMassAccuracy": 0.3, "RelevanceRankAccuracy": 0.4}
        for role in ("teacher", "student", "baseline")
        for m in ("PE layer", "PE logit", "Saliency")])
    text = "\n".join(answer(quick, diff))
    assert "8 seeds" in text and "in every seed for PE layer" in text
    assert "sign-flip p over seeds 0.008" in text
