"""``key.sub=value`` overrides (kdexplain/config/overrides.py): values are parsed as YAML."""

from __future__ import annotations

from kdexplain.config import apply_overrides, load_config


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
