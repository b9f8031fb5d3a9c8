"""The engine's parts: imports, the callable package, progress lines, function sizes."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from kdexplain.models.features import frozen, parameter_state
from kdexplain.quantify.noise import NoiseStreams, row_chunks
from kdexplain.utils.progress import LogProgress

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_quantify_does_not_import_train():
    assert _run("import sys, kdexplain.quantify; "
                "print(any(m.startswith('kdexplain.train') for m in sys.modules))") == "False"


def test_quantify_is_callable_and_its_submodules_import():
    code = ("import kdexplain, torch\n"
            "import kdexplain.quantify.plot as p\n"
            "from torch import nn\n"
            "m = nn.Sequential(nn.Flatten(), nn.Linear(48, 4))\n"
            "r = kdexplain.quantify(m, torch.randn(1, 3, 4, 4), '1', grid=2, steps=2, samples=2)\n"
            "print(tuple(r.sigma.shape), kdexplain.quantify.plot is p,"
            " callable(kdexplain.quantify.plot.plot_entropy_overlay))")
    assert _run(code) == "(1, 2, 2) True True"


def _code_lines(f: ast.FunctionDef) -> int:
    """Lines of a function, its signature included, its docstring not."""
    body = f.body[1:] if (f.body and isinstance(f.body[0], ast.Expr)
                          and isinstance(f.body[0].value, ast.Constant)) else f.body
    doc = f.body[0].end_lineno - f.body[0].lineno + 1 if body is not f.body else 0
    return f.end_lineno - f.lineno + 1 - doc


def test_engine_functions_fit_on_a_screen():
    tree = ast.parse((ROOT / "kdexplain/quantify/engine.py").read_text())
    sizes = {f.name: _code_lines(f) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    assert max(sizes.values()) <= 100, sizes


def test_parameter_state_restores_flags_and_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)).train()
    model[1].weight.requires_grad_(False)
    with frozen(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and [p.requires_grad for p in model.parameters()] == [True, True, False, True]
    try:
        with parameter_state(model, requires_grad=True, train=False):
            assert all(p.requires_grad for p in model.parameters())
            raise KeyError
    except KeyError:
        pass
    assert model.training and not model[1].weight.requires_grad


def test_row_chunks_cover_every_row_once_with_varying_sizes():
    sizes = iter([3, 5, 2, 7, 100])
    chunks = list(row_chunks([0, 2, 5], 4, sizes))
    assert [sum(s1 - s0 for _, s0, s1 in c) for c in chunks] == [3, 5, 2, 2]
    rows = [(b, s) for c in chunks for b, s0, s1 in c for s in range(s0, s1)]
    assert rows == [(b, s) for b in (0, 2, 5) for s in range(4)]


def test_noise_of_split_rows_equals_one_draw():
    a = NoiseStreams(["x", "y"], 3, (1, 2, 2), torch.device("cpu"))
    b = NoiseStreams(["x", "y"], 3, (1, 2, 2), torch.device("cpu"))
    whole = a.draw(1, 5)
    parts = b.rows([(1, 0, 2)], 5) + b.rows([(1, 2, 5)], 5)
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)


def test_log_progress_lines_with_rate_and_eta():
    buf = io.StringIO()
    bar = LogProgress(total=4, desc="sweep", unit="ckpt", interval=0.05, stream=buf)
    bar.update(2)
    time.sleep(0.2)  # the timer prints while no unit finishes
    bar.update(2)
    bar.close()
    bar.close()  # once
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("sweep: 0/4 ckpt (0%)")
    assert len(lines) >= 4  # start, >= 1 timed line, end
    assert any(line.startswith("sweep: 2/4 ckpt (50%)") and "ckpt/s" in line and "ETA" in line
               for line in lines[1:-1])
    assert lines[-1].startswith("sweep: 4/4 ckpt (100%)") and "ETA 0 s" in lines[-1]
    assert list(LogProgress(range(3), stream=io.StringIO(), interval=10)) == [0, 1, 2]
