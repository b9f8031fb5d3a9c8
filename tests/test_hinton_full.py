"""Hinton's findings at full size (issue 14): seed-level statistics, jitter, the paper protocol."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyses.hinton.nets import jitter_images  # noqa: E402
from analyses.hinton.seedstats import (  # noqa: E402
    best_temperature,
    gap_closed,
    ratio_of_means,
    seed_resamples,
)

# ----------------------------------------------------------------------------- statistics


def test_seed_resamples_are_exact_for_few_seeds():
    idx = seed_resamples(3)
    assert idx.shape == (27, 3) and len({tuple(r) for r in idx}) == 27
    assert seed_resamples(8, n_resamples=100).shape == (100, 8)  # 8^8 > 50 000: drawn


def test_gap_closed_golden_values():
    # the paper's MNIST errors: (146 - 74) / (146 - 67)
    assert gap_closed([146], [74], [67]).ratio.estimate == pytest.approx(72 / 79)
    # two seeds: small 10, 12; distilled 6, 8; teacher 5, 4
    g = gap_closed([10.0, 12.0], [6.0, 8.0], [5.0, 4.0])
    assert g.ratio.estimate == pytest.approx(4 / 6.5)  # (11 - 7) / (11 - 4.5)
    assert g.per_seed == pytest.approx([4 / 5, 4 / 8])
    # the 4 ordered resamples: AA 0.8, BB 0.5, AB = BA 4 / 6.5 -> 95% interval [0.5, 0.8]
    assert (g.ratio.low, g.ratio.high) == pytest.approx((0.5, 0.8))
    assert g.ratio.exact and g.ratio.undefined_share == 0 and g.better_seeds == 2
    assert g.sign_flip_p == pytest.approx(1 / 4) and np.isnan(g.t_p)  # identical gains
    # three seeds, gains 4, 2, 3: only +++ of 8 patterns reaches a mean >= 3; the one-sided
    # paired t: t = 3 / (1 / sqrt 3) with 2 df, p = (1 - t / sqrt(t^2 + 2)) / 2
    g = gap_closed([10.0, 10.0, 10.0], [6.0, 8.0, 7.0], [2.0, 2.0, 2.0])
    assert g.sign_flip_p == pytest.approx(1 / 8)
    t = 3 * np.sqrt(3)
    assert g.t_p == pytest.approx((1 - t / np.sqrt(t * t + 2)) / 2, rel=1e-6)
    assert g.mean_gain == pytest.approx(3.0) and g.ratio.estimate == pytest.approx(3 / 8)


def test_gap_closed_when_the_teacher_is_not_better():
    g = gap_closed([5.0, 5.0], [4.0, 6.0], [6.0, 4.0])  # gaps -1 and +1: mean gap 0
    assert np.isnan(g.ratio.estimate) and np.isnan(g.per_seed[0])
    # resampled mean gaps: AA -1, AB = BA 0, BB +1: defined in 1 of 4 (BB: (5 - 6) / 1)
    assert g.ratio.undefined_share == pytest.approx(0.75) and g.ratio.low == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="one value per seed"):
        gap_closed([1.0, 2.0], [1.0], [0.0, 0.0])


def test_ratio_of_means_interval():
    r = ratio_of_means([9.0, 8.0], [10.0, 10.0])
    assert r.estimate == pytest.approx(0.85) and (r.low, r.high) == pytest.approx((0.8, 0.9))


def test_best_temperature_interval_on_fabricated_errors():
    temps = [1.0, 3.0, 10.0]
    # seed A is best at 3, seed B at 10; resamples AA -> 3, BB -> 10, AB and BA (mean
    # 5, 4.5, 4) -> 10: the arg-min is 3 in 1 of 4 resamples
    b = best_temperature(temps, [[5.0, 3.0, 4.0], [5.0, 6.0, 4.0]])
    assert b.best == 10.0 and (b.low, b.high) == (3.0, 10.0)
    assert b.share == {"1": 0.0, "3": 0.25, "10": 0.75} and b.share_in_band == 0.25
    # every seed best at T = 3: a degenerate interval inside the paper's band
    errs = np.array([[6.0, 2.0, 5.0], [7.0, 3.0, 4.0], [5.0, 1.0, 9.0]])
    b = best_temperature(temps, errs)
    assert (b.best, b.low, b.high, b.share_in_band) == (3.0, 3.0, 3.0, 1.0) and b.exact
    # a tie in the mean curve goes to the first temperature of the grid
    assert best_temperature(temps, [[2.0, 2.0, 3.0]]).best == 1.0
    with pytest.raises(ValueError, match="shape"):
        best_temperature(temps, np.zeros((2, 2)))


# ----------------------------------------------------------------------------- jitter


def test_jitter_shape_max_shift_and_determinism():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(500, 28 * 28, generator=gen)
    a = jitter_images(x, (28, 28), 2, torch.Generator().manual_seed(7))
    b = jitter_images(x, (28, 28), 2, torch.Generator().manual_seed(7))
    c = jitter_images(x, (28, 28), 2, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)  # the seed decides, nothing else
    # recover each image's shift: the one of the 25 candidate shifts that reproduces it
    img, out = x.view(-1, 28, 28), a.view(-1, 28, 28)
    padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
    found = torch.full((500, 2), 99)
    for dy in range(5):
        for dx in range(5):
            hit = (padded[:, dy:dy + 28, dx:dx + 28] == out).flatten(1).all(1)
            found[hit] = torch.tensor([dy - 2, dx - 2])
    assert int(found.abs().max()) == 2  # never more than 2 pixels, in either direction
    assert len({tuple(r) for r in found.tolist()}) == 25  # every shift in [-2, 2]^2 occurs
    assert torch.equal(jitter_images(x, (28, 28), 0), x)


# ----------------------------------------------------------------------------- the protocol

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")


def test_paper_protocol_config():
    from analyses.hinton.config import make_config, with_epochs

    cfg = make_config(protocol="paper", dataset="fashion")
    assert cfg.mode == "paper" and cfg.train_size is None and cfg.seeds == (0, 1, 2, 3, 4)
    t = cfg.teacher
    assert (t.hidden, t.input_dropout, t.hidden_dropout, t.jitter) == (1200, 0.2, 0.5, 2)
    assert cfg.student.hidden == 800 and cfg.narrow.hidden == 30 and cfg.missing_class == 3
    one = with_epochs(cfg, 1)
    assert {one.teacher.epochs, one.student.epochs, one.narrow.epochs} == {1}
    assert one.teacher.jitter == 2  # only the epochs change
    with pytest.raises(ValueError, match="unknown protocol"):
        make_config(protocol="huge")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_file(), reason="Fashion-MNIST is not installed: "
                    "`apt-get install dataset-fashion-mnist` (Debian) puts it in "
                    "/usr/share/datasets/fashion-mnist")
def test_paper_protocol_smoke_on_fashion(tmp_path, capsys):
    """The whole protocol, on 600 / 200 real Fashion-MNIST images, 1 epoch, 2 seeds."""
    import json

    from analyses.hinton.__main__ import cli

    out = tmp_path / "pages"
    argv = ["distillation,missing-class", "--protocol", "paper", "--dataset", "fashion",
            "--train-size", "600", "--test-size", "200", "--epochs", "1", "--seeds", "0,1",
            "--holdout-per-class", "10", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
            "--threads", "1"]
    assert cli(argv) == 0
    dist = json.loads((out / "distillation.json").read_text())
    assert dist["meta"]["config"]["mode"] == "paper" and dist["n_test"] == 200
    assert dist["meta"]["config"]["teacher"]["jitter"] == 2
    assert dist["meta"]["nets"]["nets"] == 2 * (3 + 2 * (1 + 9))  # per seed: 3 + 2 sweeps
    page = (out / "distillation.md").read_text()
    for text in ("Share of the small-net-to-teacher gap closed", "one-sided sign-flip p",
                 "Best temperature of the 2x30 net", "Criterion, fixed before the run",
                 "--protocol paper", "- Machine: ", "wall-clock for this analysis"):
        assert text in page, text
    mc = (out / "missing_class.md").read_text()
    assert "Share of the 'Dress's recovered" in mc and "prior matching" in mc
    assert json.loads((out / "missing_class.json").read_text())["per_seed"]["1"]["reference"]
    # resumable: the second run trains nothing and rebuilds the same pages
    capsys.readouterr()
    assert cli(argv) == 0
    log = capsys.readouterr().err
    assert "training " not in log and "0 nets trained" in (out / "distillation.md").read_text()


def _fabricated(teacher, labels, distilled, jitter=2):
    per_seed = {str(i): {"teacher": t, "labels": s, "distilled": d,
                         "sweep": {w: {"labels": s, "distilled": [d, s, s]}
                                   for w in ("wide", "narrow")}}
                for i, (t, s, d) in enumerate(zip(teacher, labels, distilled, strict=True))}
    return {"n_test": 1000, "per_seed": per_seed, "sweep_temperatures": [1.0, 4.0, 20.0],
            "distill_temperature": 20.0, "widths": {"wide": 300, "narrow": 30},
            "meta": {"config": {"teacher": {"input_dropout": 0.2, "hidden_dropout": 0.5,
                                            "jitter": jitter, "epochs": 15}}}}


def test_the_page_says_what_limits_an_unmet_criterion():
    from analyses.hinton.distillation import limits_text, seed_level

    # a teacher worse than the small net (136 vs 110 errors of 1000), distilled worse too
    r = _fabricated([136, 137, 135], [110, 111, 109], [133, 132, 134])
    text = limits_text(r, seed_level(r))
    assert "the teacher is not better than the small net trained on labels (13.60% against " \
           "11.00% test error; better in 0 of 3 seeds)" in text
    assert "`--teacher nojitter`" in text
    assert "distillation at T = 20 made the small net worse" in text and "worse in 3 of 3" in text
    # a good teacher and a small, uneven gain: too few seeds
    r = _fabricated([90, 91, 89], [110, 111, 109], [105, 112, 100])
    text = limits_text(r, seed_level(r))
    assert "distillation helps" in text and "in 2 of 3 seeds" in text
    assert "the smallest possible is 0.12" in text
    # met: nothing to explain
    r = _fabricated([90] * 5, [110] * 5, [91, 92, 90, 93, 91])
    assert seed_level(r)["target_met"] and limits_text(r, seed_level(r)) == ""
