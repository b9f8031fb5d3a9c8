"""kdexplain.concepts.analysis: analyze_concepts on hand-made entropy grids (docs/method.md
section 4), the selection of images, the tests over seeds and the verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from kdexplain.concepts import ConceptSettings, RunEntropies, analyze_concepts
from tests.concepts_common import DIST, G
from tests.concepts_common import hand_entropy as _entropy
from tests.concepts_common import hand_foreground as _foreground
from tests.concepts_common import run_entropies as _run


def test_analyze_drops_nan_images_and_reproduces_hand_numbers():
    fg = np.concatenate([_foreground(), _foreground()[:1]])
    third = np.full((3, 1, G, G), -1.0)
    third[1] = np.nan  # image 2: no usable signal at epoch 5
    s = np.concatenate([_entropy(), third], axis=1)
    b = s.copy()
    a = analyze_concepts(_run(s, b, fg))
    assert a.used_keys[0]["student"] == ["img0", "img1"]
    why = a.images.set_index(["role", "image_key"]).loc[("student", "img2"), "reason"]
    assert why == "no usable signal (D0 = 0) at epoch 5"
    summ = a.summary.set_index(["role", "metric"])["value"]
    assert summ[("student", "N_fg")] == pytest.approx(3.0)
    assert summ[("student", "N_bg")] == pytest.approx(0.5)
    assert summ[("student", "fg_ratio")] == pytest.approx(5 / 6)
    assert summ[("student", "D_mean")] == pytest.approx(0.875)
    assert summ[("student", "D_std")] == pytest.approx(0.375)
    assert summ[("student", "D_var")] == pytest.approx(0.140625)
    assert summ[("student", "rho")] == pytest.approx(5 / 6)
    # S identical to B: every test has all-zero differences -> p = 1, inconclusive
    assert (a.tests["p_value"] == 1.0).all()
    assert (a.tests["verdict"] == "inconclusive").all()
    assert (a.verdicts["verdict"] == "inconclusive").all()


def test_analyze_selection_uses_images_effective_for_both():
    fg = np.zeros((4, G, G), bool)
    fg[:, :2, :2] = True
    s = np.full((3, 4, G, G), -3.0)
    s[:, :, :2, :2] = -3.5
    b, t = s.copy(), s.copy()
    s[2, 1, :2, :2] = -2.0  # S rejects img1 at epoch 10
    b[1, 2, :2, :2] = -2.0  # B rejects img2 at epoch 5
    t[2, 3, :2, :2] = -2.0  # T rejects img3: only the teacher loses it
    a = analyze_concepts(_run(s, b, fg, teacher=t), select_effective=True)
    assert a.used_keys[0]["student"] == ["img0", "img3"]
    assert a.used_keys[0]["baseline"] == ["img0", "img3"]
    assert a.used_keys[0]["teacher"] == ["img0"]
    table = a.images.set_index(["role", "image_key"])
    assert table.loc[("student", "img1"), "reason"].startswith("not effective: mean background")
    assert "epoch 10" in table.loc[("student", "img1"), "reason"]
    assert table.loc[("student", "img2"), "reason"].startswith("not used by the compared pair")
    assert not table.loc[("baseline", "img2"), "effective"]
    # without the rule every image is used
    a2 = analyze_concepts(_run(s, b, fg, teacher=t))
    assert a2.used_keys[0]["student"] == ["img0", "img1", "img2", "img3"]
    # pick_sample: only the first K images effective for S and B are kept
    a3 = analyze_concepts(_run(s, b, fg, teacher=t), select_effective=True, keep_effective=1)
    assert a3.used_keys[0]["student"] == a3.used_keys[0]["baseline"] == ["img0"]
    reason = a3.images.set_index(["role", "image_key"]).loc[("student", "img3"), "reason"]
    assert reason.startswith("beyond the first 1 effective")
    with pytest.raises(ValueError, match="keep_effective needs select_effective"):
        ConceptSettings(keep_effective=5)


def test_analyze_no_image_left_says_why():
    fg = _foreground()
    s = np.full((3, 2, G, G), np.nan)
    with pytest.raises(ValueError, match="2 x no usable signal"):
        analyze_concepts(_run(s, _entropy(), fg))


def _population(n: int, fg_low: float, rng: np.random.Generator, m: int = 3) -> np.ndarray:
    """Entropy grids where the foreground cells drop by ``fg_low`` (plus noise)."""
    e = -3.0 + 0.05 * rng.standard_normal((m, n, G, G))
    e[:, :, :2, :2] -= fg_low * rng.random((m, n, 2, 2))
    return e


def test_analyze_verdict_directions():
    rng = np.random.default_rng(0)
    n = 20
    fg = np.zeros((n, G, G), bool)
    fg[:, :2, :2] = True
    strong, weak = _population(n, 1.0, rng), _population(n, 0.25, rng)
    a = analyze_concepts(_run(strong, weak, fg))
    t = a.tests.set_index("metric")
    assert t.loc["N_fg", "verdict"] == "holds" and t.loc["N_fg", "effect_size"] > 0.5
    flipped = analyze_concepts(_run(weak, strong, fg))
    t2 = flipped.tests.set_index("metric")
    assert t2.loc["N_fg", "verdict"] == "does not hold"
    assert t2.loc["N_fg", "p_value"] == pytest.approx(t.loc["N_fg", "p_value"])


def test_analyze_several_seeds_spread_over_seeds():
    rng = np.random.default_rng(1)
    n = 6
    fg = np.zeros((n, G, G), bool)
    fg[:, :2, :2] = True
    runs = [_run(_population(n, 1.0, rng), _population(n, 0.3, rng), fg, seed=s)
            for s in (3, 7)]
    a = analyze_concepts(runs, ConceptSettings(n_resamples=500))
    assert a.seeds == [3, 7]
    row = a.summary.set_index(["role", "metric"]).loc[("student", "N_fg")]
    per_seed = a.per_image[a.per_image["role"] == "student"].groupby("seed")["N_fg"].mean()
    assert row["value"] == pytest.approx(per_seed.mean())
    assert row["sd_seeds"] == pytest.approx(per_seed.std(ddof=1))
    assert row["spread_kind"] == "sd over seeds" and row["n_images"] == 2 * n
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    # the verdicts rest on the seeds (2 pairs), never on pooled (seed, image) pairs
    carrying = a.tests[a.tests["carries_verdict"]]
    assert (carrying["level"] == "seeds").all() and (carrying["n_pairs"] == 2).all()
    assert carrying["test"].eq("sign-flip over seeds").all()
    diagnostics = a.tests[~a.tests["carries_verdict"]]
    assert set(diagnostics["seed"]) == {3, 7} and (diagnostics["n_pairs"] == n).all()
    assert (diagnostics["level"] == "images").all()
    assert (a.verdicts["n_pairs"] == 2).all() and (a.verdicts["level"] == "seeds").all()
    with pytest.raises(ValueError, match="share a seed"):
        analyze_concepts([runs[0], runs[0]])


def test_analyze_epoch_distance_and_options():
    fg = _foreground()
    run = _run(_entropy(), _entropy(), fg)
    with pytest.raises(ValueError, match="distance_epoch"):
        analyze_concepts(run, distance="epoch")
    run.distance_epoch = {r: DIST * 2 for r in run.entropy}
    a = analyze_concepts(run, distance="epoch")
    d = a.summary.set_index(["role", "metric"])["value"]
    assert d[("student", "D_mean")] == pytest.approx(1.75)
    with pytest.raises(ValueError, match="baseline_entropy"):
        ConceptSettings(baseline_entropy="cells")
    s = ConceptSettings.from_mapping({"concept_threshold": 0.3, "alpha": 0.01})
    assert s.concept_threshold == 0.3 and s.alpha == 0.01
    with pytest.raises(ValueError, match="unknown concept setting.* images, n_resample; the "
                                         "settings are concept_threshold"):
        ConceptSettings.from_mapping({"concept_threshold": 0.3, "images": 30, "n_resample": 9})


def test_count_epoch_missing_for_the_teacher_falls_back_to_its_last():
    fg = _foreground()
    run = _run(_entropy(), _entropy(), fg, teacher=_entropy())
    run.epochs["teacher"] = np.array([0, 3, 7])
    a = analyze_concepts(run, count_epoch=5)
    got = a.per_image.groupby("role")["count_epoch"].first()
    assert got.to_dict() == {"baseline": 5, "student": 5, "teacher": 7}
    assert any("teacher" in n for n in a.notes)
    with pytest.raises(ValueError, match="not a checkpoint of the student"):
        analyze_concepts(run, count_epoch=7)


def _seeded_runs(shifts: list[float], n: int = 4) -> list[RunEntropies]:
    """One run per seed; S has ``shift`` more foreground concepts than B on every image.

    B: no concept at all (flat -3.0 grids). S: the first ``k`` foreground cells of every
    image at -4.0 (a concept: H_bar = -3.0, H_bar - H_i = 1.0 > 0.2), so per image
    ``N_fg(S) - N_fg(B) = k`` and the per-seed mean difference is exactly ``k``.
    """
    fg = np.zeros((n, G, G), bool)
    fg[:, :2, :2] = True
    runs = []
    for seed, k in enumerate(shifts):
        b = np.full((3, n, G, G), -3.0)
        s = b.copy()
        cells = [(0, 0), (0, 1), (1, 0), (1, 1)][:int(k)]
        for r, c in cells:
            s[:, :, r, c] = -4.0
        runs.append(_run(s, b, fg, seed=seed))
    return runs


def test_seed_level_test_golden_p_values():
    # per-seed N_fg differences 1, 2, 3: every sign pattern is equally likely under the
    # null hypothesis; only +++ and --- reach |mean| >= 2 -> p = 2/8 exactly
    a = analyze_concepts(_seeded_runs([1, 2, 3]), n_resamples=200)
    row = a.tests[a.tests["carries_verdict"]].set_index("metric").loc["N_fg"]
    assert row["level"] == "seeds" and row["n_pairs"] == 3
    assert row["diff"] == pytest.approx(2.0) and row["p_value"] == pytest.approx(0.25)
    assert row["min_p"] == pytest.approx(0.25)
    assert row["effect_size"] == pytest.approx(2.0)  # mean 2 / sd 1
    assert row["verdict"] == "inconclusive"
    # the hierarchical interval spans the seeds' differences (no within-seed spread)
    assert 1.0 <= row["diff_ci_low"] <= row["diff_ci_high"] <= 3.0
    v = a.verdicts.set_index("hypothesis").loc[1]
    assert "too few runs" in v["explanation"] and "3 training runs" in v["scope"]
    # five seeds, all positive: p = 2/32 = 0.0625, still not below 0.05
    five = analyze_concepts(_seeded_runs([1, 1, 2, 3, 4]), n_resamples=200)
    row5 = five.tests[five.tests["carries_verdict"]].set_index("metric").loc["N_fg"]
    assert row5["p_value"] == pytest.approx(0.0625) and row5["n_pairs"] == 5


@pytest.mark.slow
def test_single_seed_wording_says_two_networks_only(tmp_path):
    from kdexplain.report import write_report

    a = analyze_concepts(_seeded_runs([2]), n_resamples=200)
    assert (a.tests["level"] == "images").all() and a.tests["carries_verdict"].all()
    assert (a.verdicts["level"] == "images").all()
    assert a.verdicts["scope"].str.contains("those two networks only").all()
    write_report(a, tmp_path / "r")
    index = (tmp_path / "r" / "index.md").read_text(encoding="utf-8")
    assert "those two networks only" in index
    assert "Within-run diagnostics" not in index
    several = analyze_concepts(_seeded_runs([1, 2]), n_resamples=200)
    write_report(several, tmp_path / "s")
    index = (tmp_path / "s" / "index.md").read_text(encoding="utf-8")
    assert "Within-run diagnostics" in index and "those two networks only" not in index


def test_epoch0_value_and_change_from_it():
    # _entropy(): N_fg per image [1, 1] at epoch 0 and [2, 4] at epoch 10 (the count
    # checkpoint); N_bg [1, 0] -> [1, 0]; fg_ratio [0.5, 1] -> [2/3, 1]
    a = analyze_concepts(_run(_entropy(), _entropy(), _foreground()), n_resamples=200)
    s = a.summary.set_index(["role", "metric"])
    row = s.loc[("student", "N_fg")]
    assert row["epoch0"] == pytest.approx(1.0) and row["change_from_epoch0"] == pytest.approx(2.0)
    assert row["change_ci_low"] <= 2.0 <= row["change_ci_high"]
    assert s.loc[("student", "N_bg"), "change_from_epoch0"] == pytest.approx(0.0)
    assert s.loc[("student", "fg_ratio"), "epoch0"] == pytest.approx(0.75)
    assert s.loc[("student", "fg_ratio"), "change_from_epoch0"] == pytest.approx(1 / 12)
    assert np.isnan(s.loc[("student", "rho"), "epoch0"])
    got = a.per_image[a.per_image["role"] == "student"]
    np.testing.assert_allclose(got["N_fg_epoch0"], [1, 1])
    np.testing.assert_allclose(got["peak_distance_step"], got["peak_distance"])

