"""The Hinton reproduction (analyses/hinton): golden values, limits, bias rules, a tiny run."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

# analyses/ lives at the repository root, beside kdexplain/, and is not installed.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyses.hinton import ANALYSES, Workspace, make_config, render_only, run_analyses  # noqa: E402
from analyses.hinton.__main__ import cli  # noqa: E402
from analyses.hinton.bias import (  # noqa: E402
    agreement_bias,
    apply_bias,
    bias_sweep,
    prior_matching_bias,
)
from analyses.hinton.config import default_teacher, teacher_preset  # noqa: E402
from analyses.hinton.gradient import (  # noqa: E402
    logit_regression_grad,
    relative_difference,
    soft_target_grad,
)
from analyses.hinton.missing_class import run as run_missing_class  # noqa: E402
from analyses.hinton.nets import NetConfig, jitter_images  # noqa: E402
from analyses.hinton.temperature import (  # noqa: E402
    TOY_LOGITS,
    soft_target_entropy,
    softmax_table,
)
from kdexplain.data.digits import load_mnist5k  # noqa: E402

# ----------------------------------------------------------------------------- temperature


def test_temperature_softmax_golden_values():
    table = softmax_table(TOY_LOGITS, [1.0, 2.0])
    r2 = math.sqrt(2.0)
    expected = torch.tensor([[1 / 7, 2 / 7, 4 / 7],
                             [1 / (3 + r2), r2 / (3 + r2), 2 / (3 + r2)]], dtype=torch.float64)
    torch.testing.assert_close(table, expected, rtol=0, atol=1e-12)
    # T -> infinity: uniform; T -> 0: one-hot on the largest logit
    far = softmax_table(TOY_LOGITS, [1e6, 1e-3])
    torch.testing.assert_close(far[0], torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(far[1], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_soft_target_entropy_golden_values():
    logits = torch.tensor([[0.0, math.log(2), math.log(4)], [5.0, 5.0, 5.0]], dtype=torch.float64)
    h = soft_target_entropy(logits, 1.0)
    p = torch.tensor([1, 2, 4], dtype=torch.float64) / 7
    assert float(h[0]) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-12)
    assert float(h[1]) == pytest.approx(math.log(3), abs=1e-12)
    hs = [float(soft_target_entropy(logits[:1], t)) for t in (0.5, 1, 2, 5, 50)]
    assert all(a < b for a, b in zip(hs, hs[1:], strict=False)) and hs[-1] < math.log(3)


# ----------------------------------------------------------------------------- gradient


def test_soft_target_gradient_matches_the_formula():
    gen = torch.Generator().manual_seed(0)
    z, v = torch.randn(6, 10, generator=gen) * 3, torch.randn(6, 10, generator=gen) * 3
    for t in (1.0, 4.0):
        q = torch.softmax(z.double() / t, 1)
        p = torch.softmax(v.double() / t, 1)
        torch.testing.assert_close(soft_target_grad(z, v, t), t * (q - p))
        torch.testing.assert_close(soft_target_grad(z, v, t, scale_t2=False), (q - p) / t)
    torch.testing.assert_close(logit_regression_grad(z, v, zero_mean=False),
                               (z - v).double() / 10)


def test_high_temperature_limit_needs_zero_mean_logits():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(32, 10, generator=gen) * 2 + 3.0  # non-zero, different means
    v = torch.randn(32, 10, generator=gen) * 2 - 1.0
    temps = [1.0, 10.0, 100.0, 1000.0]
    zero = [relative_difference(z, v, t, zero_mean=True) for t in temps]
    raw = [relative_difference(z, v, t, zero_mean=False) for t in temps]
    assert all(a > b for a, b in zip(zero, zero[1:], strict=False))  # shrinks with T ...
    assert zero[-1] < 1e-2 and zero[-1] < zero[1] / 50  # ... like 1/T
    assert raw[-1] > 0.5 and raw[-1] > 0.9 * raw[-2]  # ... but not without zero-meaning
    # the T^2 factor keeps the gradient's magnitude; without it it falls as 1/T^2
    g100, g1000 = soft_target_grad(z, v, 100.0).norm(), soft_target_grad(z, v, 1000.0).norm()
    assert float(g1000 / g100) == pytest.approx(1.0, abs=0.02)
    p100 = soft_target_grad(z, v, 100.0, scale_t2=False).norm()
    p1000 = soft_target_grad(z, v, 1000.0, scale_t2=False).norm()
    assert float(p1000 / p100) == pytest.approx(0.01, rel=0.05)


# ----------------------------------------------------------------------------- bias rules


def test_bias_sweep_counts_by_hand():
    logits = torch.tensor([[0.0, 1.0, 0.5],    # label 0: wrong until bias > 1
                           [0.0, 2.0, 0.0],    # label 1: right until bias >= 2
                           [3.0, 0.0, 0.0]])   # label 2
    labels = torch.tensor([0, 1, 2])
    s = bias_sweep(logits, labels, [0], torch.tensor([0.0, 1.5, 2.5]))
    assert s["errors"].tolist() == [2, 1, 2]
    assert s["class_errors"].tolist() == [1, 0, 0] and s["class_total"] == 1
    torch.testing.assert_close(apply_bias(logits, [1, 2], -1.0)[0], torch.tensor([0.0, 0.0, -0.5]))


def test_label_free_rules_recover_a_shifted_bias():
    gen = torch.Generator().manual_seed(2)
    teacher = torch.randn(400, 10, generator=gen) * 3
    student = apply_bias(teacher, [3], -2.7)  # the student's class-3 logit is 2.7 too low
    assert prior_matching_bias(student, teacher, [3]) == pytest.approx(2.7, abs=1e-6)
    grid = torch.arange(-50, 51, dtype=torch.float64) / 10
    assert agreement_bias(student, teacher, [3], grid) == pytest.approx(2.7, abs=0.15)
    student78 = apply_bias(teacher, [7, 8], 4.0)
    assert prior_matching_bias(student78, teacher, [7, 8]) == pytest.approx(-4.0, abs=1e-6)


def test_jitter_moves_pixels_by_at_most_the_shift():
    img = torch.zeros(1, 7, 7)
    img[0, 3, 3] = 1.0
    x = img.reshape(1, 49).repeat(200, 1)
    out = jitter_images(x, (7, 7), 2, torch.Generator().manual_seed(0)).reshape(200, 7, 7)
    assert torch.equal(out.sum((1, 2)), torch.ones(200))  # nothing lost inside the frame
    rows, cols = torch.nonzero(out, as_tuple=True)[1:]
    assert int(rows.min()) == 1 and int(rows.max()) == 5 and int(cols.min()) == 1
    assert torch.equal(jitter_images(x, (7, 7), 0), x)


# ----------------------------------------------------------------------------- tiny runs

def _tiny_config():
    tiny = NetConfig(hidden=64, epochs=8, lr=3e-3)
    return make_config(
        quick=True, seeds=(0,),
        teacher=NetConfig(hidden=128, input_dropout=0.1, hidden_dropout=0.2, jitter=1,
                          epochs=8, lr=2e-3),
        student=tiny, wide=tiny, weighting_student=tiny,
        narrow=NetConfig(hidden=16, epochs=8, lr=3e-3),
        sweep_temperatures=(2.0, 8.0), weighting_hard_weights=(0.1, 1.0),
        weighting_temperatures=(4.0,), holdout_per_class=10, bias_step=0.25,
        consistent_teachers=("own",), consistent_student=tiny, ensemble_size=3)


@pytest.fixture(scope="module")
def tiny_workspace():
    data = load_mnist5k().subsample(1200, 400, seed=0)
    return Workspace(_tiny_config(), data, cache_dir=None)


@pytest.mark.slow
def test_missing_class_bias_sweep_raises_class_3_accuracy(tiny_workspace):
    res = run_missing_class(tiny_workspace)
    r = res["per_seed"]["0"]["no_class"]
    assert r["transfer_size"] == 1200 - 10 * 10 - (120 - 10)  # no held-out image, no 3
    before = 1 - r["class_errors"] / r["class_total"]
    after = 1 - r["best_class_errors"] / r["class_total"]
    assert r["best_bias"] > 0 and after > before + 0.1
    assert r["best_errors"] < r["errors"]
    # the only-7s-and-8s student: lowering their biases lowers the error
    k = res["per_seed"]["0"]["only_kept"]
    assert k["best_bias"] < 0 and k["best_errors"] < k["errors"]
    # the label-free prior rule moves the 3-bias the right way
    assert r["rules"]["prior"]["bias"] > 0


@pytest.mark.slow
def test_all_analyses_write_pages_plots_json_and_index(tiny_workspace, tmp_path):
    results = run_analyses(list(ANALYSES), tiny_workspace.cfg, tmp_path,
                           workspace=tiny_workspace, command="pytest tiny run")
    assert list(results) == list(ANALYSES)
    for name in ("temperature", "gradient", "distillation", "missing_class", "weighting",
                 "consistent", "ensemble"):
        page = (tmp_path / f"{name}.md").read_text()
        assert "pytest tiny run" in page and "nan" not in page.replace("nans", "")
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["meta"]["config"]["seeds"] == [0]
    assert len(list(tmp_path.glob("*.png"))) == 6
    index = (tmp_path / "index.md").read_text()
    assert index.count("](") == len(ANALYSES)
    dist = results["distillation"]["per_seed"]["0"]
    assert 0 <= dist["teacher"] <= 400 and len(dist["sweep"]["narrow"]["distilled"]) == 2
    # every page opens alike: title, the paper line, then what the paper says
    for name in ("temperature", "gradient", "distillation", "missing_class", "weighting",
                 "consistent", "ensemble"):
        paragraphs = (tmp_path / f"{name}.md").read_text().split("\n\n")
        assert paragraphs[0].startswith("# ") and paragraphs[1].startswith("Reproducing ")
        assert paragraphs[2].startswith("**Paper")
    # pages can be rebuilt from the JSON alone, the same bytes
    before = (tmp_path / "weighting.md").read_text()
    (tmp_path / "weighting.md").unlink()
    render_only(["weighting"], tmp_path)
    assert (tmp_path / "weighting.md").read_text() == before


def test_render_page_opens_with_the_paper_then_the_setup(tmp_path):
    from analyses.hinton.report import render_page
    result = {"name": "toy", "title": "A toy page", "meta": {
        "command": "python -m analyses.hinton toy", "config": {"mode": "quick", "seeds": [0, 1]},
        "wall_s": 3.0, "split_note": "toy split", "environment": {}}}
    figure = tmp_path / "toy.png"
    paths = render_page(tmp_path, result, where="section 9", paper="\nWhat it says.\n",
                        setup_title="Setup", setup="How we test it.", body="\n## Numbers\n",
                        figures=[figure])
    assert paths == [tmp_path / "toy.md", figure]
    text = (tmp_path / "toy.md").read_text()
    assert text.startswith("# A toy page\n\nReproducing ")
    assert ("do not edit by hand.\n\n**Paper (section 9).** What it says.\n\n"
            "**Setup.** How we test it.\n\n## Numbers\n\n## How this page was made") in text
    assert json.loads((tmp_path / "toy.json").read_text())["name"] == "toy"
    bare = render_page(tmp_path, result, paper="Only this.", body="Rest.")
    assert "not edit by hand.\n\n**Paper.** Only this.\n\nRest.\n\n## How" in bare[0].read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli(["no-such-analysis", "--out", str(tmp_path)]) == 2
    assert "unknown analysis" in capsys.readouterr().err
    code = cli(["temperature", "--dataset", "fashion", "--root", str(tmp_path / "none"),
                "--out", str(tmp_path), "--no-cache"])
    assert code == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert cli(["temperature", "--seeds", "a,b", "--out", str(tmp_path)]) == 2


def test_config_validation():
    with pytest.raises(ValueError, match="kept_classes"):
        make_config(missing_class=7)
    with pytest.raises(ValueError, match="seeds"):
        make_config(seeds=())
    with pytest.raises(ValueError, match="weighting_hard_weights"):
        make_config(weighting_hard_weights=(1.5,))
    assert replace(make_config(quick=True), seeds=(3,)).seeds == (3,)
    assert teacher_preset("paper").hidden_dropout == 0.5 and teacher_preset("paper").jitter == 2
    # nojitter: light's dropout, unshifted inputs
    assert teacher_preset("nojitter").jitter == 0
    assert teacher_preset("nojitter").hidden_dropout == teacher_preset("light").hidden_dropout
    assert make_config().teacher == teacher_preset(default_teacher(quick=False))
    assert make_config(quick=True).teacher == teacher_preset(default_teacher(quick=True), True)
    with pytest.raises(ValueError, match="unknown teacher preset 'huge'; choose one of paper, "
                                         "light, nojitter"):
        teacher_preset("huge")
