"""The config schema (kdexplain/config/schema.py): defaults, the seeds, the analysis section
built from the concept settings, removed keys."""

from __future__ import annotations

import pytest

from kdexplain.config import PAPER_CHECKPOINTS, ConfigError, parse_config


def test_defaults_and_analysis_section():
    cfg = parse_config({})
    a = cfg.analysis
    assert (a.n_images, a.split, a.models, a.checkpoints, a.preset) == (
        30, "val", ["teacher", "student", "baseline"], "all", "default")
    assert (a.steps, a.samples, a.grid, a.entropy_weight) == (None, None, 16, None)
    assert (a.feature_transform, a.concept_threshold, a.baseline_entropy, a.mask_rule) == (
        "relu", 0.2, "pooled", "fraction")
    assert (a.select_effective, a.max_batch) == (False, None)
    assert cfg.optim.momentum == 0.9 and cfg.optim.weight_decay == 1e-4
    assert cfg.checkpoints == list(PAPER_CHECKPOINTS)


def test_seeds_make_one_run_each():
    cfg = parse_config({"name": "m", "seeds": [3, 5]})
    assert cfg.run_seeds() == [3, 5]
    one = cfg.for_seed(5)
    assert one.seed == 5 and one.seeds is None
    assert parse_config({}).run_seeds() == [0]
    with pytest.raises(ConfigError, match="seeds repeat"):
        parse_config({"seeds": [1, 1]})


def test_the_analysis_section_takes_the_concept_settings_and_their_checks():
    from kdexplain.concepts import ConceptSettings

    a = parse_config({"analysis": {"alpha": 0.01, "distance": "epoch", "count_epoch": 5,
                                   "empty_rho": "exclude"}}).analysis
    s = ConceptSettings.from_mapping(a.concept_settings())
    assert s == ConceptSettings(alpha=0.01, distance="epoch", count_epoch=5, empty_rho="exclude")
    # a rule across settings of ConceptSettings is checked when the config loads
    with pytest.raises(ConfigError, match="analysis: keep_effective needs select_effective"):
        parse_config({"analysis": {"keep_effective": 3}})
    with pytest.raises(ConfigError, match="analysis.n_resamples"):
        parse_config({"analysis": {"n_resamples": 1}})


def test_the_removed_analysis_images_key_is_an_unknown_key():
    with pytest.raises(ConfigError, match="analysis.images: unknown key"):
        parse_config({"analysis": {"images": 7}})
