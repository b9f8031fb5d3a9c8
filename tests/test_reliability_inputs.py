"""Hostile or careless input gives one clear line (or a warning where going on is right).

The "unclear" cases of issue 25: each was a traceback or a misleading line. Nothing here
trains a model: the refusals come before any training, and the checkpoints are untrained
kdnets saved as a run saves them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from kdexplain.cli import main
from kdexplain.data import build_dataset, mask_to_grid
from kdexplain.models import build_model
from kdexplain.quantification import quantify
from tests.reliability_common import FAST, TINY, one_error_line

KWARGS = {"width": 4, "hidden": 16, "dropout": 0.1}


def _error(capsys) -> str:
    """The error of a refused command: ``error: ...`` (an invalid config lists each bad key
    on a line of its own under it), never a traceback."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") or "\nerror: " in err, err
    assert "Traceback" not in err, err
    return err


def _checkpoint(path, **changes):
    """An untrained tiny kdnet saved in the layout of a run's checkpoint, then changed."""
    torch.manual_seed(0)
    model = build_model("kdnet", 3, **KWARGS)
    ckpt = {"model": model.state_dict(), "arch": "kdnet", "num_classes": 3,
            "model_kwargs": dict(KWARGS), "layer": "classifier.0", "role": "student",
            "epoch": 0}
    for key, value in changes.items():
        if key == "nan":
            ckpt["model"][value][0, 0] = float("nan")
        elif key == "plain":
            ckpt = ckpt["model"]
        else:
            ckpt[key] = value
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("changes,args,expected", [
    ({"nan": "classifier.0.weight"}, [],
     "holds non-finite weights (NaN or infinity) in classifier.0.weight"),
    ({"num_classes": "3"}, [], "num_classes must be a positive integer, got '3'"),
    # checked against the state dict's shapes before a 10**9-wide layer is allocated
    ({"model_kwargs": {**KWARGS, "hidden": 10**9}}, [],
     "does not fit kdnet with 3 classes and options"),
    ({"plain": True}, ["--arch", "vgg11"],
     "does not fit vgg11 with 3 classes and options {}: 11 shape(s) differ"),
    ({}, ["--image-size", "4"], "kdnet cannot take 4 x 4 images"),
])
def test_bad_checkpoints_and_sizes_under_quantify(images, tmp_path, capsys, changes, args,
                                                  expected):
    ckpt = _checkpoint(tmp_path / "c.pt", **changes)
    rc = main(["quantify", "--checkpoint", str(ckpt), "--layer", "fc1", "--dataset",
               str(images), "--image-size", "24", "--n-images", "1", "--steps", "1",
               "--samples", "1", "--grid", "2", "--out", str(tmp_path / "q"), *args])
    assert rc == 2
    line = one_error_line(capsys)
    assert expected in line
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("overrides,expected", [
    (["seed=1180591620717411303424"], "seed: Input should be less than or equal to 4294967295"),
    (["seed=-1"], "seed: Input should be greater than or equal to 0"),
    (["seeds=[0,-2]"], "seeds.1: Input should be greater than or equal to 0"),
    (["optim.lr=.nan"], "optim.lr: Input should be a finite number"),
    (["optim.lr=.inf"], "optim.lr: Input should be a finite number"),
    (["analysis.n_images=999"], "analysis.n_images = 999, but the 'val' split of scenes "
                                "holds only 12 images"),
    (["analysis.grid=64"], "analysis.grid = 64 is larger than the images "
                           "(data.image_size = 32)"),
    (["analysis.checkpoints=[0,1,2]"], "analysis.checkpoints asks for epochs [2], which the "
                                       "teacher does not keep"),
])
def test_config_mistakes_are_refused_before_training(tmp_path, capsys, overrides, expected):
    rc = main(["run", str(TINY), f"out_dir={tmp_path}", "name=r", *FAST, *overrides,
               "--report-dir", str(tmp_path / "rep")])
    assert rc == 2
    assert expected in _error(capsys)
    assert not (tmp_path / "r").exists() and not (tmp_path / "rep").exists()


def test_checkpoints_beyond_every_phase_are_warned(tmp_path, capsys, caplog):
    with caplog.at_level("WARNING", logger="kdexplain.pipeline"):
        rc = main(["run", str(TINY), f"out_dir={tmp_path}", "name=r", *FAST,
                   "checkpoints=[0,1,5]", "analysis.n_images=999"])  # stops before training
    assert rc == 2
    assert "checkpoints [5] lie beyond every training phase (the longest has 1 epochs)" in \
        caplog.text
    assert "analysis.n_images = 999" in one_error_line(capsys)


@pytest.mark.parametrize("text", ["[" * 100_000, "{a: " * 50_000])
def test_deeply_nested_yaml_is_refused(tmp_path, capsys, text):
    deep = tmp_path / "deep.yaml"
    deep.write_text(text)
    assert main(["run", str(deep), f"out_dir={tmp_path}"]) == 2
    assert "deep.yaml, line 1: lists and mappings nested deeper than 32 levels" in \
        one_error_line(capsys)


def test_a_truncated_data_cache_is_rebuilt(tmp_path):
    options = {"images_per_class": 2, "val_per_class": 1, "seed": 3,
               "classes": ["bird", "zebra"]}
    first = build_dataset("scenes", split="train", root=tmp_path, image_size=16, **options)
    files = list(tmp_path.rglob("*.npz"))
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    again = build_dataset("scenes", split="train", root=tmp_path, image_size=16, **options)
    assert torch.equal(again[0]["image"], first[0]["image"])


class _Returns(nn.Module):
    def __init__(self, what):
        super().__init__()
        self.what = what

    def forward(self, x):
        return {"dict": {"a": x}, "int": 3, "const": torch.ones(x.shape[0], 4)}[self.what]


@pytest.mark.parametrize("what,layer,options,expected", [
    ("dict", "1", {}, "layer '1' returns a value of type dict, not a tensor"),
    ("int", "1", {}, "layer '1' returns a value of type int, not a tensor"),
    ("const", "1", {}, "the output of layer '1' does not depend on the input image"),
    ("dict", nn.Conv2d(3, 4, 3), {}, "the Conv2d given as the layer is not a module of this "
                                     "Sequential"),
    ("dict", "0", {"steps": 2.5}, "steps must be a whole number, got 2.5"),
])
def test_python_api_layers_and_settings(what, layer, options, expected):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _Returns(what))
    with pytest.raises(ValueError) as err:
        quantify(model, torch.rand(2, 3, 16, 16), layer, grid=4,
                 **{"steps": 2, "samples": 2, **options})
    assert expected in str(err.value)


def test_a_nan_mask_is_refused():
    mask = torch.zeros(8, 8)
    mask[2, 3] = float("nan")
    with pytest.raises(ValueError, match="mask holds NaN or infinite values"):
        mask_to_grid(mask, 4)
