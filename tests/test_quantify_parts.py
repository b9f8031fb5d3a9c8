"""The engine's parts: imports, the callable package, progress lines, function sizes."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from kdexplain.models.features import frozen, parameter_state
from kdexplain.quantification import quantify
from kdexplain.quantification.noise import NoiseStreams, row_chunks
from kdexplain.utils.progressbar import LogProgress

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


def test_log_progress_prints_timed_lines_while_no_unit_finishes():
    # the clock is fake (the numbers are exact); only the timer thread runs on real time,
    # and the test waits for its line instead of racing it with a sleep
    clock, buf = _FakeClock(), io.StringIO()
    bar = LogProgress(total=4, desc="sweep", unit="ckpt", interval=0.01, stream=buf,
                      clock=clock)
    clock.now += 10.0
    bar.update(2)
    timed = "sweep: 2/4 ckpt (50%), 0.2 ckpt/s, ETA 10 s, elapsed 10 s"
    deadline = time.monotonic() + 120
    while timed not in buf.getvalue().splitlines() and time.monotonic() < deadline:
        time.sleep(0.01)
    bar.update(2)
    bar.close()
    bar.close()  # once
    lines = buf.getvalue().splitlines()
    assert lines[0] == "sweep: 0/4 ckpt (0%), 0 ckpt/s, ETA ?, elapsed 0 s"
    assert timed in lines[1:-1]  # printed by the timer, with no unit finished meanwhile
    assert lines[-1] == "sweep: 4/4 ckpt (100%), 0.4 ckpt/s, ETA 0 s, elapsed 10 s"
    assert list(LogProgress(range(3), stream=io.StringIO(), interval=10)) == [0, 1, 2]


class _FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_rate_and_eta_from_a_fake_clock():
    clock, buf = _FakeClock(), io.StringIO()
    bar = LogProgress(total=4, desc="quantify fc1", unit="step", interval=3600, stream=buf,
                      clock=clock)
    clock.now += 10.0
    bar.update(2)  # 2 steps in 10 s: 0.2 step/s, 2 left: ETA 10 s
    assert bar.line() == "quantify fc1: 2/4 step (50%), 0.2 step/s, ETA 10 s, elapsed 10 s"
    clock.now += 590.0
    bar.update(1)  # 3 in 600 s: 0.005 step/s, 1 left: 200 s
    assert bar.line() == ("quantify fc1: 3/4 step (75%), 0.005 step/s, ETA 3.3 min, "
                          "elapsed 10.0 min")
    bar.close()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "quantify fc1: 0/4 step (0%), 0 step/s, ETA ?, elapsed 0 s"
    assert lines[-1].startswith("quantify fc1: 3/4 step (75%)") and len(lines) == 2
    assert LogProgress(total=1, stream=io.StringIO()).interval == 30.0  # the default


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


# --- the closed-form start, the stacked checkpoints, the chunk calibration -------------------

def _linear(dim=32, size=16, grid=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(dim, 3 * size * size, generator=gen)
    scale = torch.rand(grid, grid, generator=gen) * 3 + 0.2
    k = size // grid
    weight = weight * scale.repeat_interleave(k, 0).repeat_interleave(k, 1).flatten().repeat(3)[None]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, dim, bias=False))
    model[1].weight.data = weight
    cell = (torch.arange(grid * grid).reshape(grid, grid).repeat_interleave(k, 0)
            .repeat_interleave(k, 1).flatten().repeat(3))
    c = torch.zeros(grid * grid).index_add_(0, cell, (weight**2).sum(0)).reshape(grid, grid)
    return model, c


def test_sensitivity_probes_estimate_the_closed_form_c():
    from contextlib import ExitStack

    from kdexplain.quantification.distortion import Distortion
    model, c = _linear()
    x = torch.randn(2, 3, 16, 16)
    with ExitStack() as stack, torch.enable_grad():
        dist = Distortion([model], "1", None, x, lambda t: t, torch.contiguous_format, stack)
        dist.compute_clean(64)
        noise = NoiseStreams(["a", "b"], 0, (3, 16, 16), x.device, stream="probe-noise")
        signs = NoiseStreams(["a", "b"], 0, (32,), x.device, stream="probe")
        est = dist.sensitivity(noise, signs, 0.01, 4, 400, 64)
    assert est.shape == (1, 2, 4, 4)
    rel = (est[0] / c - 1).abs()  # Hutchinson: rank-32 cells, 400 probes -> ~1.3 % per cell
    assert rel.max() < 0.08, rel


def test_closed_form_log_sigma_golden():
    from kdexplain.quantification.optimizers import closed_form_log_sigma
    c = torch.tensor([[1.0, 4.0], [9.0, 16.0]])[None, None]
    dim, sigma0, lam = 8, 0.01, 7.0
    d0 = torch.tensor([[sigma0**2 * 30.0 / dim]])  # the linear D0 = sigma0^2 sum(c) / dim
    got = closed_form_log_sigma(c, d0, torch.tensor([[lam]]), dim).exp()
    # docs/method.md section 3: sigma_i^2 = lambda sigma0^2 sum_j c_j / (2 n c_i) = 7e-4 * 30 / (8 c_i)
    want = (7e-4 * 30 / (8 * c)).sqrt()
    torch.testing.assert_close(got, want)


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


def test_chunk_sizer_doubles_while_faster_then_keeps_and_caches():
    from kdexplain.quantification import chunking
    key = ("test-sizer",)
    chunking._CALIBRATED.pop(key, None)
    per_row = {4: 1.0, 8: 0.6, 16: 0.5, 32: 0.49}  # seconds per row at each size
    sizer = chunking.ChunkSizer(4, 64, key)
    seen = []
    while not sizer.settled:
        seen.append(sizer.size)
        sizer.record(sizer.size, per_row[sizer.size] * sizer.size)
    assert seen == [4, 4, 8, 8, 16, 16, 32, 32]  # 32 is < 5 % faster than 16: keep 16
    assert sizer.size == 16 and chunking._CALIBRATED[key] == 16
    assert chunking.ChunkSizer(4, 64, key).size == 16  # the next call starts settled
    assert chunking.ChunkSizer(4, 64, key).settled
    fixed = chunking.ChunkSizer(5, 5, key=None)
    fixed.record(5, 1.0)
    assert fixed.settled and fixed.size == 5
    partial = chunking.ChunkSizer(4, 64, ("test-sizer-2",))
    partial.record(3, 1.0)  # a partial chunk (the last of a step) is not a measurement
    assert partial.size == 4 and not partial.settled


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
