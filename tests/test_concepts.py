"""docs/method.md section 4 metrics on hand-made entropy grids, every number computed by hand below."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kdexplain.concepts import (
    ConceptSettings,
    RunEntropies,
    analyze_concepts,
    background_entropy,
    concept_cells,
    count_concepts,
    distance_spread,
    effective_images,
    foreground_ratio,
    model_concepts,
    peak_checkpoint,
    peak_distance,
    stability,
    usable_images,
)

G = 4
EPOCHS = np.array([0, 5, 10])
DIST = np.array([0.0, 0.5, 1.25])


def _foreground() -> np.ndarray:
    """Image 0: top-left 2x2 block (12 background cells); image 1: columns 0-1 (8 bg)."""
    fg = np.zeros((2, G, G), dtype=bool)
    fg[0, :2, :2] = True
    fg[1, :, :2] = True
    return fg


def _entropy() -> np.ndarray:
    """(M=3, N=2, 4, 4), base -3.0 with a few low (and one high) cells.

    H_bar (pooled = mean of per-image background means):
      ck0: img0 bg (11*-3 - 3.3)/12 = -3.025, img1 bg (7*-3 - 2.4)/8 = -2.925 -> -2.975
      ck1: img0 -3.0, img1 (7*-3 - 3.4)/8 = -3.05 -> -3.025
      ck2: img0 (11*-3 - 3.6)/12 = -3.05, img1 -3.0 -> -3.025
    Concepts (H_i < H_bar - 0.2):
      ck0: img0 fg (0,0), bg (3,3); img1 fg (0,0)              N_fg [1, 1]  N_bg [1, 0]
      ck1: img0 fg (0,0),(0,1); img1 fg (0,0),(1,0),(2,1), bg (0,3)  N_fg [2, 3]  N_bg [0, 1]
      ck2: img0 fg (0,0),(1,1), bg (2,2); img1 fg (0,0),(1,0),(2,1),(3,0)  N_fg [2, 4]  N_bg [1, 0]
    """
    e = np.full((3, 2, G, G), -3.0)
    e[0, 0, 0, 0], e[0, 0, 3, 3] = -3.5, -3.3
    e[0, 1, 2, 2], e[0, 1, 0, 0] = -2.4, -3.2
    e[1, 0, 0, 0] = e[1, 0, 0, 1] = -3.6
    e[1, 1, 0, 0] = e[1, 1, 1, 0] = e[1, 1, 2, 1] = -3.5
    e[1, 1, 0, 3] = -3.4
    e[2, 0, 0, 0] = e[2, 0, 1, 1] = e[2, 0, 2, 2] = -3.6
    e[2, 1, 0, 0] = e[2, 1, 1, 0] = e[2, 1, 2, 1] = e[2, 1, 3, 0] = -3.5
    return e


def test_background_entropy_pooled_is_mean_of_image_means():
    h = background_entropy(_entropy(), _foreground(), "pooled")
    assert h.shape == (3, 2)
    np.testing.assert_allclose(h[:, 0], [-2.975, -3.025, -3.025])
    np.testing.assert_allclose(h[:, 1], h[:, 0])
    # not the cell-weighted pool, (-36.3 - 23.4) / 20 = -2.985
    assert not np.isclose(h[0, 0], -2.985)


def test_background_entropy_per_image():
    h = background_entropy(_entropy(), _foreground(), "per_image")
    np.testing.assert_allclose(h, [[-3.025, -2.925], [-3.0, -3.05], [-3.05, -3.0]])


def test_background_entropy_skips_nan_images_and_falls_back_without_background():
    e = np.concatenate([_entropy(), np.full((3, 2, G, G), -1.0)], axis=1)
    fg = np.concatenate([_foreground(), np.zeros((2, G, G), bool)])
    e[1, 2] = np.nan  # image 2: no signal at checkpoint 1
    fg[3] = True  # image 3: no background cell at all
    h = background_entropy(e, fg, "pooled")
    # ck0: images 0, 1, 2 count (-3.025, -2.925, -1.0); image 3 has no background
    np.testing.assert_allclose(h[0, 0], (-3.025 - 2.925 - 1.0) / 3)
    np.testing.assert_allclose(h[1, 0], -3.025)  # image 2 skipped at ck1
    hp = background_entropy(e, fg, "per_image")
    np.testing.assert_allclose(hp[:, 3], h[:, 0])  # no background -> pooled value


def test_concept_cells_counts_and_strict_threshold():
    e, fg = _entropy(), _foreground()
    c = concept_cells(e, background_entropy(e, fg), 0.2)
    n_fg, n_bg = count_concepts(c, fg)
    np.testing.assert_array_equal(n_fg, [[1, 1], [2, 3], [2, 4]])
    np.testing.assert_array_equal(n_bg, [[1, 0], [0, 1], [1, 0]])
    assert c[0, 0, 0, 0] and c[0, 0, 3, 3] and not c[0, 1, 2, 2]
    # strict: H_bar - H_i == b exactly (binary-exact numbers) is not a concept
    e2 = np.full((1, 1, G, G), -3.0)
    e2[0, 0, 0, 0] = -3.25
    e2[0, 0, 0, 1] = -3.26
    fg2 = np.zeros((1, G, G), bool)
    fg2[0, 0, :2] = True
    c2 = concept_cells(e2, background_entropy(e2, fg2), 0.25)
    assert not c2[0, 0, 0, 0] and c2[0, 0, 0, 1]


def test_concept_cells_nan_is_never_a_concept():
    e = _entropy()
    e[1, 1] = np.nan
    c = concept_cells(e, background_entropy(e, _foreground()))
    assert not c[1, 1].any()


def test_foreground_ratio_zero_when_no_concept():
    np.testing.assert_allclose(foreground_ratio([2, 4, 0], [1, 0, 0]), [2 / 3, 1.0, 0.0])


def test_peak_first_of_ties_and_distance_spread():
    n_fg = np.array([[1, 1], [2, 3], [2, 4]])
    np.testing.assert_array_equal(peak_checkpoint(n_fg), [1, 2])  # img0: tie 1/2 -> 1
    d = peak_distance(n_fg, DIST)
    np.testing.assert_allclose(d, [0.5, 1.25])
    s = distance_spread(d)
    assert s["D_mean"] == pytest.approx(0.875)
    assert s["D_var"] == pytest.approx(0.140625)  # ((0.375)^2 * 2) / 2, ddof 0
    assert s["D_std"] == pytest.approx(0.375)


def test_peak_of_image_without_concepts():
    n_fg = np.array([[0, 1], [0, 3], [0, 3]])
    np.testing.assert_allclose(peak_distance(n_fg, DIST), [0.0, 0.5])  # first checkpoint
    d = peak_distance(n_fg, DIST, without_concepts="exclude")
    assert np.isnan(d[0]) and d[1] == 0.5
    assert distance_spread(d) == {"D_mean": 0.5, "D_std": 0.0, "D_var": 0.0}
    assert np.isnan(distance_spread(np.array([np.nan]))["D_mean"])


def test_stability_hand_computed_and_empty_sets():
    e, fg = _entropy(), _foreground()
    c = concept_cells(e, background_entropy(e, fg))
    # img0: S_2 = {(0,0),(1,1)}, union {(0,0),(0,1),(1,1)} -> 2/3; img1: 4/4
    np.testing.assert_allclose(stability(c, fg), [2 / 3, 1.0])
    none = np.zeros_like(c)
    none[:, 0] = c[:, 0]  # image 1 never has a concept: 0/0
    np.testing.assert_allclose(stability(none, fg), [2 / 3, 0.0])
    r = stability(none, fg, empty="exclude")
    assert r[0] == pytest.approx(2 / 3) and np.isnan(r[1])
    # background concepts do not enter rho
    bg_only = np.zeros_like(c)
    bg_only[:, 0, 3, 3] = True
    np.testing.assert_allclose(stability(bg_only, fg), [0.0, 0.0])


def test_model_concepts_all_numbers():
    mc = model_concepts(_entropy(), _foreground(), EPOCHS, DIST)
    assert mc.count_index == 2 and mc.count_epoch == 10
    m = mc.image_metrics()
    np.testing.assert_allclose(m["N_fg"], [2, 4])
    np.testing.assert_allclose(m["N_bg"], [1, 0])
    np.testing.assert_allclose(m["fg_ratio"], [2 / 3, 1.0])
    np.testing.assert_allclose(m["peak_distance"], [0.5, 1.25])
    np.testing.assert_allclose(m["rho"], [2 / 3, 1.0])
    mc1 = model_concepts(_entropy(), _foreground(), EPOCHS, DIST, count_epoch=5)
    np.testing.assert_allclose(mc1.image_metrics()["N_fg"], [2, 3])
    np.testing.assert_allclose(mc1.fg_ratio, [1.0, 0.75])
    with pytest.raises(ValueError, match="not an analysed checkpoint"):
        model_concepts(_entropy(), _foreground(), EPOCHS, DIST, count_epoch=7)


def test_usable_images():
    e = _entropy()
    e[1, 1] = np.nan
    ok, first = usable_images(e)
    np.testing.assert_array_equal(ok, [True, False])
    np.testing.assert_array_equal(first, [-1, 1])


def test_effective_images_original_rule():
    # 5 images, 3 checkpoints at epochs 0, 5, 10, late from epoch 4 (40/150 of 15)
    fg = np.zeros((5, G, G), bool)
    fg[:, :2, :2] = True
    fg[4] = True  # no background cell: undefined -> rejected
    e = np.full((3, 5, G, G), -3.0)
    e[:, 0][:, :2, :2] = -3.5  # fg lower than bg everywhere: effective
    e[0, 1][:2, :2] = -2.0  # bg < fg only at the early checkpoint: still effective
    e[:, 2][:, :2, :2] = -3.5
    e[2, 2][:2, :2] = -2.5  # bg < fg at epoch 10: rejected there
    # image 3: fg == bg everywhere: equal passes
    eff, first = effective_images(e, fg, EPOCHS, late_epoch=15 * 40 / 150)
    np.testing.assert_array_equal(eff, [True, True, False, True, False])
    np.testing.assert_array_equal(first, [-1, -1, 2, -1, 1])
    # with every checkpoint late, image 1 is rejected at epoch 0
    eff0, first0 = effective_images(e, fg, EPOCHS, late_epoch=0)
    assert not eff0[1] and first0[1] == 0


# ------------------------------------------------------------------ analyze_concepts

def _run(student: np.ndarray, baseline: np.ndarray, fg: np.ndarray, keys=None, seed=None,
         teacher: np.ndarray | None = None) -> RunEntropies:
    ent = {"student": student, "baseline": baseline}
    if teacher is not None:
        ent["teacher"] = teacher
    n = fg.shape[0]
    return RunEntropies(entropy=ent, epochs={r: EPOCHS for r in ent},
                        distance={r: DIST for r in ent}, foreground=fg,
                        image_keys=keys or [f"img{i}" for i in range(n)], seed=seed,
                        total_epochs={r: 15 for r in ent})


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


def test_run_entropies_validates_its_contract():
    fg = _foreground()
    with pytest.raises(ValueError, match="partly NaN"):
        e = _entropy()
        e[0, 0, 0, 0] = np.nan
        _run(e, _entropy(), fg)
    with pytest.raises(ValueError, match="strictly increasing"):
        RunEntropies(entropy={"student": _entropy()}, epochs={"student": [0, 10, 5]},
                     distance={"student": DIST}, foreground=fg, image_keys=["a", "b"])
    with pytest.raises(ValueError, match="foreground"):
        RunEntropies(entropy={"student": _entropy()}, epochs={"student": EPOCHS},
                     distance={"student": DIST}, foreground=fg[:1], image_keys=["a"])
    with pytest.raises(ValueError, match="unknown model roles"):
        RunEntropies(entropy={"pupil": _entropy()}, epochs={"pupil": EPOCHS},
                     distance={"pupil": DIST}, foreground=fg, image_keys=["a", "b"])


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


# ------------------------------------------------------------------ threshold curve

def _drop_grids(drop: float, n: int) -> np.ndarray:
    """Background at exactly -3 nats, the 2x2 foreground ``drop`` nats lower, at every
    checkpoint: a foreground cell is a concept exactly when b < drop."""
    e = np.full((3, n, G, G), -3.0)
    e[:, :, :2, :2] -= drop
    return e


def test_threshold_curve_finds_a_verdict_that_flips_with_b():
    from kdexplain.concepts import threshold_curve

    n = 3
    fg = np.zeros((n, G, G), bool)
    fg[:, :2, :2] = True
    # S's foreground is 0.15 below the background, B's 0.3: both hold 4 foreground concepts
    # at b = 0.1, only B at b = 0.2 and 0.25, neither at b = 0.35
    runs = [_run(_drop_grids(0.15, n), _drop_grids(0.3, n), fg, seed=s) for s in range(7)]
    settings = ConceptSettings(n_resamples=200)
    curve = threshold_curve(runs, settings, thresholds=(0.1, 0.25, 0.35))
    assert curve.thresholds == [0.1, 0.2, 0.25, 0.35]  # the report's own b is added
    t = curve.tests.set_index(["b", "metric"])
    assert (t["level"] == "seeds").all() and (t["n_pairs"] == 7).all()
    assert t.loc[(0.1, "N_fg"), "diff"] == 0 and t.loc[(0.1, "N_fg"), "p_value"] == 1
    for b in (0.2, 0.25):
        assert t.loc[(b, "N_fg"), "S"] == 0 and t.loc[(b, "N_fg"), "B"] == 4
        assert t.loc[(b, "N_fg"), "p_value"] == pytest.approx(2 / 2**7)  # exact sign flip
        assert t.loc[(b, "N_fg"), "verdict"] == "does not hold"
    assert t.loc[(0.35, "N_fg"), "diff"] == 0
    v = curve.verdicts.set_index(["b", "hypothesis"])["verdict"]
    assert v[(0.1, 1)] == "inconclusive" and v[(0.2, 1)] == "does not hold"
    assert v[(0.35, 1)] == "inconclusive"
    st = curve.robustness.set_index("hypothesis")
    assert st.loc[1, "fragile"] and st.loc[1, "verdicts"] == "inconclusive / does not hold"
    assert st.loc[1, "verdict_at_b"] == "does not hold"
    # the stability again from the tests alone (a report's threshold_curve.csv), seeds and
    # a single run's image-level rows alike
    from kdexplain.concepts.threshold import robustness_from_tests

    pd.testing.assert_frame_equal(robustness_from_tests(curve.tests, 0.2), curve.robustness)
    one = threshold_curve(runs[:1], settings, thresholds=(0.1, 0.25, 0.35))
    assert (one.tests["level"] == "images").all()
    pd.testing.assert_frame_equal(robustness_from_tests(one.tests, 0.2), one.robustness)
    # the same analysis at b = 0.2 gives the same test row as the curve
    a = analyze_concepts(runs, settings)
    row = a.tests[a.tests["carries_verdict"]].set_index("metric").loc["N_fg"]
    assert row["p_value"] == t.loc[(0.2, "N_fg"), "p_value"]
    assert row["diff_ci_low"] == t.loc[(0.2, "N_fg"), "diff_ci_low"]
    with pytest.raises(ValueError, match="positive"):
        threshold_curve(runs, settings, thresholds=(0.1, -0.2))


# ------------------------------------------------------------------ what drives D_mean

def test_distance_drivers_hand_computed():
    from kdexplain.concepts import distance_drivers, drivers_sentence

    n = 2
    fg = np.zeros((n, G, G), bool)
    fg[:, :2, :2] = True

    def grids(first: int) -> np.ndarray:  # foreground concepts from checkpoint `first` on
        e = np.full((3, n, G, G), -3.0)
        e[first:, :, :2, :2] = -4.0
        return e

    step = {"student": np.array([0.0, 0.5, 1.25]), "baseline": np.array([0.0, 0.5, 1.25])}
    epoch = {"student": np.array([0.0, 0.9, 1.0]), "baseline": np.array([0.0, 0.2, 0.3])}
    runs = [RunEntropies(entropy={"student": grids(1), "baseline": grids(2)},
                         epochs={"student": EPOCHS, "baseline": EPOCHS}, distance=step,
                         distance_epoch=epoch, foreground=fg,
                         image_keys=["a", "b"], seed=s) for s in range(3)]
    a = analyze_concepts(runs, ConceptSettings(n_resamples=200))
    d = distance_drivers(a).set_index("form")
    # S peaks at checkpoint 1 (epoch 5), B at checkpoint 2 (epoch 10), in every image and seed
    golden = {"d_step": (0.5, 1.25), "d_epoch": (0.9, 0.3), "share_step": (0.4, 1.0),
              "share_epoch": (0.9, 1.0), "share_epochs": (0.5, 1.0)}
    for form, (s_val, b_val) in golden.items():
        assert d.loc[form, "S"] == pytest.approx(s_val)
        assert d.loc[form, "B"] == pytest.approx(b_val)
        assert d.loc[form, "diff"] == pytest.approx(s_val - b_val)
        assert d.loc[form, "diff_ci_low"] == pytest.approx(s_val - b_val)  # no spread
        assert d.loc[form, "p_value"] == pytest.approx(0.25)  # 2 / 2^3, exact sign flip
        assert d.loc[form, "level"] == "seeds" and d.loc[form, "n_pairs"] == 3
    assert d["agrees"].to_dict() == {"d_step": True, "d_epoch": False, "share_step": True,
                                     "share_epoch": True, "share_epochs": True}
    text = drivers_sentence(distance_drivers(a))
    assert "smaller for S than for B" in text and "the measure decides the direction" in text
    assert "the total path length does not drive it" in text and "earlier for S" in text
