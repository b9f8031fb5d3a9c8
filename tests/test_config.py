"""The experiment config: shipped files validate, overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdexplain.config import (
    PAPER_CHECKPOINTS,
    ConfigError,
    apply_overrides,
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


def test_overrides_are_yaml_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\noptim: {lr: 0.1}\n")
    cfg = load_config(p, ["optim.lr=0.02", "checkpoints=[3,0,1,1]", "data.options.seed=7",
                          "teacher.pretrained=null", "student.mode=soft", "analysis.checkpoints=[0,2]",
                          "name=other"])
    assert cfg.optim.lr == 0.02
    assert cfg.checkpoints == [0, 1, 3]  # sorted, unique
    assert cfg.data.options == {"seed": 7}
    assert cfg.student.mode == "soft"
    assert cfg.analysis.checkpoints == [0, 2]
    assert cfg.name == "other"
    raw = apply_overrides({"a": {"b": 1}}, ["a.c.d=hello world"])
    assert raw == {"a": {"b": 1, "c": {"d": "hello world"}}}


@pytest.mark.parametrize("override, expected", [
    (["optim.lrr=0.1"], r"optim\.lrr: unknown key; allowed keys here: name, lr, momentum"),
    (["optim.name=rmsprop"], r"optim\.name: got 'rmsprop'; allowed values: 'sgd' or 'adam'"),
    (["student.mode=hard"], r"student\.mode: got 'hard'; allowed values: 'feature', 'soft' or 'logit_l2'"),
    (["optim.schedule=step"], r"allowed values: 'loglinear', 'constant' or 'cosine'"),
    (["checkpoints=[1,2]"], r"checkpoints: must include 0"),
    (["analysis.models=[teacher,other]"], r"analysis\.models\.1: got 'other'"),
    (["model.arch=vgg13"], r"model\.arch: got 'vgg13'; allowed values: 'kdnet', 'alexnet'"),
    (["foo=1"], r"foo: unknown key; allowed keys here: name, seed, seeds"),
    (["optim.lr=-1"], r"optim\.lr: Input should be greater than 0"),
    (["teacher.pretrain_epochs=3"], r"needs data\.source"),
    (["name=a/b"], r"name: must be a folder name"),
    (["data.preload=true", "data.options.augment=true"], r"data\.preload holds .*options\.augment"),
])
def test_bad_values_name_key_and_choices(tmp_path, override, expected):
    p = tmp_path / "c.yaml"
    p.write_text("name: bad\n")
    with pytest.raises(ConfigError, match=expected):
        load_config(p, override)


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


def test_report_settings_are_checked(tmp_path):
    from kdexplain.cli.report import report_overrides

    assert report_overrides(["alpha=0.01", "analysis.ci_level=0.9"]) == [
        "analysis.alpha=0.01", "analysis.ci_level=0.9"]
    with pytest.raises(ValueError, match="--set grid: not a setting of the report"):
        report_overrides(["grid=8"])
    with pytest.raises(ValueError, match="--set expects key=value"):
        report_overrides(["alpha"])
    with pytest.raises(ConfigError, match="analysis.alpha"):
        parse_config({"analysis": {"alpha": 2}})


def test_the_removed_analysis_images_key_is_an_unknown_key():
    with pytest.raises(ConfigError, match="analysis.images: unknown key"):
        parse_config({"analysis": {"images": 7}})


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
    assert one.analysis.keep_effective == 20 and one.analysis.select_effective
    assert not study.teacher.per_seed
