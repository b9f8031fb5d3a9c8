"""Loading a config (kdexplain/config/loading.py): the shipped files validate and hold what
they promise, and a missing or unreadable file is an error that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdexplain.config import (
    PAPER_CHECKPOINTS,
    ConfigError,
    dump_config,
    load_config,
    parse_config,
)
from kdexplain.models import LAYER_ALIASES, build_model, resolve_layer_name

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    names = {p.stem for p in CONFIGS}
    assert {"quickstart", "tiny", "vgg16_cub", "resnet50_voc", "alexnet_ilsvrc"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert 0 in cfg.checkpoints
    # the layer resolves in the architecture (aliases included), without building weights
    aliases = LAYER_ALIASES.get(cfg.model.arch, {})
    if cfg.model.layer not in aliases:
        model = build_model(cfg.model.arch, 2, **cfg.model.kwargs)
        resolve_layer_name(model, cfg.model.layer)
    # a dumped config reads back to the same config
    assert parse_config(__import__("yaml").safe_load(dump_config(cfg))) == cfg


def test_paper_configs_follow_the_original_settings():
    for stem in ("vgg16_cub", "resnet50_voc", "alexnet_ilsvrc"):
        cfg = load_config(next(p for p in CONFIGS if p.stem == stem))
        assert cfg.data.image_size == 224
        assert cfg.checkpoints == list(PAPER_CHECKPOINTS)
        assert cfg.optim.name == "sgd" and cfg.optim.momentum == 0.9
        assert cfg.optim.weight_decay == 1e-4 and cfg.optim.batch_size == 64
        assert cfg.optim.schedule == "loglinear"
        assert cfg.baseline.epochs == cfg.student.phase1_epochs == 150


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(lst)
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: ok\n")
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(ok, ["optim.lr"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(ok, ["name.sub=1"])


def test_study_and_quickstart_configs_load_with_their_variants():
    from kdexplain.config import load_config

    quick = load_config("configs/quickstart.yaml")
    assert len(quick.run_seeds()) >= 3 and not quick.teacher.per_seed  # the shipped teacher
    assert not parse_config({}).teacher.per_seed  # the default: one teacher for all seeds
    study = load_config("configs/study.yaml")
    assert len(study.run_seeds()) >= 10 and study.optim == quick.optim  # Adam, as measured
    # one test bed: the shipped teacher, the same target task, the control on
    for cfg in (quick, study):
        assert cfg.teacher.pretrained == "kdexplain:scenes_kdnet16" and cfg.student.control
        assert cfg.data.options == quick.data.options
        assert cfg.model.model_dump(exclude={"track_layers"}) == \
            quick.model.model_dump(exclude={"track_layers"})
    # the study records both layers' weight paths, so layer-free networks are trained once
    assert set(study.model.track_layers) == {"conv", "fc1"}
    variants = {v: study.for_variant(v) for v in study.variants}
    assert {(c.model.layer, c.student.mode) for c in variants.values()} == {
        ("conv", "feature"), ("conv", "soft"), ("fc1", "feature"), ("fc1", "soft")}
    one = variants["fc1-soft"]
    assert one.name == "fc1-soft" and one.out_dir.endswith("study") and one.variants is None
    # every effective image of those drawn, under the preset of the paper's concept cells
    assert one.analysis.keep_effective is None and one.analysis.select_effective
    assert one.analysis.preset == "paper" and one.analysis.samples is None
    assert not study.teacher.per_seed
