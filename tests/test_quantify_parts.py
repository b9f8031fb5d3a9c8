"""The quantification package as a whole: imports, the callable package, progress lines,
stacked checkpoints."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from kdexplain.quantification import quantify
from tests.quantify_common import linear_with_closed_form as _linear

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_quantify_does_not_import_train():
    assert _run("import sys, kdexplain.quantification; "
                "print(any(m.startswith('kdexplain.train') for m in sys.modules))") == "False"


def test_quantify_is_callable_and_its_submodules_import():
    code = ("import kdexplain, torch\n"
            "import kdexplain.quantification.plot as p\n"
            "from torch import nn\n"
            "m = nn.Sequential(nn.Flatten(), nn.Linear(48, 4))\n"
            "r = kdexplain.quantify(m, torch.randn(1, 3, 4, 4), '1', grid=2, steps=2, samples=2)\n"
            "print(tuple(r.sigma.shape), kdexplain.quantification.plot is p,"
            " callable(kdexplain.quantification.plot.plot_entropy_overlay))")
    assert _run(code) == "(1, 2, 2) True True"


def test_quantify_prints_progress_lines_off_a_terminal(monkeypatch, capsys):
    """Off a terminal (pytest's captured stderr is not one), quantify with progress asked
    for (the CLI's None, PerturbationEntropy's show_progress=True) prints plain lines with
    the rate and ETA: the first when the work starts, the last when it ends."""
    from kdexplain.quantification import PerturbationEntropy

    monkeypatch.delenv("KDEXPLAIN_PROGRESS", raising=False)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 5)).eval()
    x = torch.randn(2, 3, 8, 8)
    quantify(model, x, "3", grid=4, steps=3, samples=2, show_progress=None)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "quantify 3: 0/3 step (0%), 0 step/s, ETA ?, elapsed 0 s"
    assert lines[-1].startswith("quantify 3: 3/3 step (100%), ") and "step/s, ETA 0 s" in lines[-1]
    PerturbationEntropy(model, "3", grid=4, steps=2, samples=2).attribute(x, show_progress=True)
    assert "quantify 3: 2/2 step (100%)" in capsys.readouterr().err
    quantify(model, x, "3", grid=4, steps=2, samples=2)  # the API's default: silent
    monkeypatch.setenv("KDEXPLAIN_PROGRESS", "0")
    quantify(model, x, "3", grid=4, steps=2, samples=2, show_progress=None)
    assert capsys.readouterr().err == ""


# --- the stacked checkpoints ---------------------------------------------------------------


def test_stacked_checkpoints_agree_with_the_loop():
    from kdexplain.models import build_model
    from kdexplain.quantification import quantify
    torch.manual_seed(0)
    models = [build_model("kdnet", 3, width=4, hidden=16).eval() for _ in range(2)]
    x = torch.randn(2, 3, 16, 16)
    kw = dict(grid=4, steps=3, samples=4, probes=4, d0_samples=8, seed=1)
    loop = quantify(models, x, "conv", stack_checkpoints=False, **kw)
    stacked = quantify(models, x, "conv", stack_checkpoints=True, **kw)
    torch.testing.assert_close(stacked.sigma, loop.sigma, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stacked.d0, loop.d0)



@pytest.mark.cuda
def test_cuda_stacked_checkpoints_reach_the_closed_form():
    from kdexplain.quantification import quantify
    model, c = _linear(seed=4)
    models = [model, copy.deepcopy(model)]  # two checkpoints: stacked by default on a GPU
    x = torch.randn(2, 3, 16, 16)
    res = quantify([m.cuda() for m in models], x.cuda(), "1", grid=4,
                   feature_transform="identity")
    want = (7.0 * 0.01**2 * c.sum() / (2 * c.numel() * c)).sqrt()
    rel = (res.sigma / want - 1).abs()
    assert res.sigma.shape == (2, 2, 4, 4) and res.sigma.device.type == "cpu"
    assert rel.flatten(2).median(2).values.max() <= 0.06, rel
