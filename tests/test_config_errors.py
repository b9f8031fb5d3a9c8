"""Config errors (kdexplain/config/errors.py): each bad value names its key and the allowed
keys or values."""

from __future__ import annotations

import pytest

from kdexplain.config import ConfigError, load_config


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
