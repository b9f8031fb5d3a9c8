"""The quantify settings (kdexplain/quantification/settings.py): presets with overrides, a
settings object, unknown names refused."""

from __future__ import annotations

import pytest
import torch

from kdexplain.quantification import quantify
from tests.quantify_common import W_, C, G, H
from tests.quantify_common import tiny_cnn as _tiny_cnn


def test_settings_object_and_overrides():
    from kdexplain.quantification.settings import resolve_settings

    s = resolve_settings("reference", entropy_weight_step=30, entropy_weight_factor=2.0)
    assert (s.entropy_weight_step, s.entropy_weight_factor) == (30, 2.0)
    assert resolve_settings("reference").entropy_weight_step == 59
    assert resolve_settings(s, steps=7) == resolve_settings("reference", steps=7,
                                                            entropy_weight_step=30,
                                                            entropy_weight_factor=2.0)
    with pytest.raises(TypeError, match=r"unknown quantify setting\(s\) lambda_rule_step; the "
                                        r"settings are preset, optimizer, steps"):
        resolve_settings("reference", lambda_rule_step=30)
    with pytest.raises(TypeError, match="give a preset or settings, not both"):
        resolve_settings(s, preset="adam")
    model = _tiny_cnn()
    x = torch.randn(1, C, H, W_)
    with pytest.raises(TypeError, match="unknown quantify setting.*stepz"):
        quantify(model, x, "4", grid=G, stepz=3)
    given = quantify(model, x, "4", grid=G, settings=resolve_settings("adam", steps=3),
                     samples=4)
    named = quantify(model, x, "4", grid=G, preset="adam", steps=3, samples=4)
    assert given.settings == named.settings and given.settings["samples"] == 4
    torch.testing.assert_close(given.sigma, named.sigma)
