"""kdexplain.concepts.drivers: what drives D_mean, computed by hand (docs/method.md section 4)."""

from __future__ import annotations

import numpy as np
import pytest

from kdexplain.concepts import ConceptSettings, RunEntropies, analyze_concepts
from tests.concepts_common import EPOCHS, G


def test_distance_drivers_hand_computed():
    from kdexplain.concepts import distance_drivers, drivers_sentence

    n = 2
    fg = np.zeros((n, G, G), bool)
    fg[:, :2, :2] = True

    def grids(first: int) -> np.ndarray:  # foreground concepts from checkpoint `first` on
        e = np.full((3, n, G, G), -3.0)
        e[first:, :, :2, :2] = -4.0
        return e

    step = {"student": np.array([0.0, 0.5, 1.25]), "baseline": np.array([0.0, 0.5, 1.25])}
    epoch = {"student": np.array([0.0, 0.9, 1.0]), "baseline": np.array([0.0, 0.2, 0.3])}
    runs = [RunEntropies(entropy={"student": grids(1), "baseline": grids(2)},
                         epochs={"student": EPOCHS, "baseline": EPOCHS}, distance=step,
                         distance_epoch=epoch, foreground=fg,
                         image_keys=["a", "b"], seed=s) for s in range(3)]
    a = analyze_concepts(runs, ConceptSettings(n_resamples=200))
    d = distance_drivers(a).set_index("form")
    # S peaks at checkpoint 1 (epoch 5), B at checkpoint 2 (epoch 10), in every image and seed
    golden = {"d_step": (0.5, 1.25), "d_epoch": (0.9, 0.3), "share_step": (0.4, 1.0),
              "share_epoch": (0.9, 1.0), "share_epochs": (0.5, 1.0)}
    for form, (s_val, b_val) in golden.items():
        assert d.loc[form, "S"] == pytest.approx(s_val)
        assert d.loc[form, "B"] == pytest.approx(b_val)
        assert d.loc[form, "diff"] == pytest.approx(s_val - b_val)
        assert d.loc[form, "diff_ci_low"] == pytest.approx(s_val - b_val)  # no spread
        assert d.loc[form, "p_value"] == pytest.approx(0.25)  # 2 / 2^3, exact sign flip
        assert d.loc[form, "level"] == "seeds" and d.loc[form, "n_pairs"] == 3
    assert d["agrees"].to_dict() == {"d_step": True, "d_epoch": False, "share_step": True,
                                     "share_epoch": True, "share_epochs": True}
    text = drivers_sentence(distance_drivers(a))
    assert "smaller for S than for B" in text and "the measure decides the direction" in text
    assert "the total path length does not drive it" in text and "earlier for S" in text
