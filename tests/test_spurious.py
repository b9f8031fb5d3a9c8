"""The spurious-background validation (analyses/spurious): helpers checked by hand, and the
whole pipeline on a tiny setting (trained networks, quantification, tables, report)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from analyses.spurious import (
    EXPECTED,
    METRICS,
    background_relation,
    compare_conditions,
    experiment_config,
    image_metrics,
    make_config,
    run_validation,
    select_balanced,
    verdict,
    weights_digest,
    within_run_tests,
    write_report,
)
from analyses.spurious.config import SpuriousConfig
from analyses.spurious.metrics import border_cells, shared_counts
from analyses.spurious.pipeline import config_differences
from analyses.spurious.render import load_config, record_from_page, render_report
from analyses.spurious.report import RunRecord
from kdexplain.concepts import HOLDS, INCONCLUSIVE, NOT_HOLDS, metric_verdict
from kdexplain.models import build_model

# --------------------------------------------------------------------------- helpers


def test_background_relation_by_hand():
    labels = np.array([0, 1, 2, 0, 1, 2])
    families = np.array([0, 0, 7, 3, 1, 2])
    # 0->0 tied; 1 on family 0 (class 0's) conflicting; 7 unrelated; family 3 with 3 classes
    # is tied to no class: unrelated; 1->1 tied; 2->2 tied
    assert background_relation(labels, families, 3).tolist() == [
        "tied", "conflicting", "unrelated", "unrelated", "tied", "tied"]
    with pytest.raises(ValueError, match="shape"):
        background_relation(labels, families[:3], 3)


def test_select_balanced_by_hand():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    eligible = np.array([True, False, True, True, True, False, True, True, True])
    # turn 1: class 0 -> 0, class 1 -> 4, class 2 -> 2; turn 2: class 0 -> 3, ...
    assert select_balanced(labels, eligible, 4).tolist() == [0, 2, 3, 4]
    assert select_balanced(labels, eligible, 7).tolist() == [0, 2, 3, 4, 6, 7, 8]
    with pytest.raises(ValueError, match="only 7 eligible"):
        select_balanced(labels, eligible, 8)


def test_image_metrics_by_hand():
    # two images on a 2x2 grid; image 0: left column foreground, image 1: top-left only
    fg = np.array([[[True, False], [True, False]],
                   [[True, False], [False, False]]])
    ent = np.array([[[-3.0, -2.0], [-2.45, -2.6]],
                    [[-2.0, -3.0], [-2.2, -2.4]]])
    # background means: image 0 (-2.0 - 2.6)/2 = -2.3; image 1 (-3.0 - 2.2 - 2.4)/3 = -2.5333
    h_bar = (-2.3 + (-7.6 / 3)) / 2  # pooled: each image counts once = -2.41667
    m = image_metrics(ent, fg, concept_threshold=0.2)
    assert np.allclose(m["H_bar"], h_bar)
    # concepts: H_i < h_bar - 0.2 = -2.61667 -> image 0: -3.0 (fg); image 1: -3.0 (bg)
    assert m["N_fg"].tolist() == [1.0, 0.0]
    assert m["N_bg"].tolist() == [0.0, 1.0]
    assert m["fg_ratio"].tolist() == [1.0, 0.0]
    assert np.allclose(m["H_fg"], [-2.725, -2.0])
    assert np.allclose(m["H_bg"], [-2.3, -7.6 / 3])
    assert np.allclose(m["bg_minus_fg"], [0.425, -7.6 / 3 + 2.0])
    # on a 2x2 grid every background cell touches the object: all background concepts are near
    assert m["N_bg_near"].tolist() == [0.0, 1.0] and m["N_bg_far"].tolist() == [0.0, 0.0]
    # no shared baseline given: the shared counts are undefined
    assert np.isnan(m["N_bg_shared"]).all() and np.isnan(m["N_fg_shared"]).all()
    # a shared baseline of -2.05 (concepts below -2.25): image 0 -3.0, -2.45 (fg), -2.6 (bg);
    # image 1 -3.0, -2.4 (bg)
    m3 = image_metrics(ent, fg, shared_h_bar=np.array([-2.05, -2.05]))
    assert m3["N_fg_shared"].tolist() == [2.0, 0.0]
    assert m3["N_bg_shared"].tolist() == [1.0, 2.0]
    assert m3["N_bg"].tolist() == m["N_bg"].tolist()  # the own counts do not change
    # per-image baseline: image 0 below -2.5 -> -3.0 (fg) and -2.6 (bg); image 1 -3.0 (bg)
    m2 = image_metrics(ent, fg, concept_threshold=0.2, baseline_entropy="per_image")
    assert m2["N_fg"].tolist() == [1.0, 0.0] and m2["N_bg"].tolist() == [1.0, 1.0]


def test_border_cells_by_hand():
    fg = np.zeros((2, 4, 4), dtype=bool)
    fg[0, 0, 0] = True  # corner: its 3 neighbours
    fg[1, 1:3, 1:3] = True  # centre block: the 12 cells around it
    near = border_cells(fg)
    assert near[0].sum() == 3 and near[0, 0, 1] and near[0, 1, 0] and near[0, 1, 1]
    assert near[1].sum() == 12 and not (near[1] & fg[1]).any()
    # no growth from one image into the next: an image without object has no border
    only_first = fg.copy()
    only_first[1] = False
    assert not border_cells(only_first)[1].any()
    with pytest.raises(ValueError, match="shape"):
        border_cells(fg[0])


def test_shared_counts_by_hand():
    fg = np.array([[[True, False], [False, False]]])
    ent = np.array([[[-3.0, -2.5], [-2.1, -1.0]]])
    n_fg, n_bg = shared_counts(ent, fg, np.array([-2.2]), concept_threshold=0.2)
    assert n_fg.tolist() == [1.0] and n_bg.tolist() == [1.0]  # -3.0 (fg) and -2.5 (bg)
    n_fg, n_bg = shared_counts(ent, fg, np.array([np.nan]))
    assert np.isnan(n_fg[0]) and np.isnan(n_bg[0])


def test_image_metrics_no_signal_image_is_left_out():
    fg = np.zeros((2, 2, 2), dtype=bool)
    fg[:, 0, 0] = True
    ent = np.full((2, 2, 2), -2.0)
    ent[0, 1, 1] = -3.0
    ent[1] = np.nan  # D0 = 0: no usable signal
    m = image_metrics(ent, fg)
    assert np.isnan(m["N_bg"][1]) and np.isnan(m["fg_ratio"][1])
    # H_bar comes from image 0 alone: (-2 - 2 - 3) / 3
    assert m["H_bar"][0] == pytest.approx(-7.0 / 3)
    assert m["N_bg"][0] == 1.0


def test_verdict_rule():
    """The core's words and rule, plus: a seed pointing the other way spoils a "holds"."""
    assert verdict(0.01, +1, +1, [1, 1]) == HOLDS == "holds"
    assert verdict(0.01, +1, +1, [1, -1]) == INCONCLUSIVE == "inconclusive"  # a seed disagrees
    assert verdict(0.01, +1, +1, [1, 0]) == HOLDS
    assert verdict(0.01, -1, +1, [-1, -1]) == NOT_HOLDS == "does not hold"
    assert verdict(0.01, -1, -1, [-1, 1]) == INCONCLUSIVE  # expected fall, one seed rose
    assert verdict(0.01, +1, -1, [1, -1]) == NOT_HOLDS  # the extra rule touches only "holds"
    assert verdict(0.2, +1, +1, [1, 1]) == INCONCLUSIVE
    assert verdict(float("nan"), +1, +1, [1]) == INCONCLUSIVE
    with pytest.raises(ValueError, match="expected"):
        verdict(0.01, +1, 0, [1])
    # the same answer as the core's rule wherever no seed disagrees
    for p, sign, expected in [(0.01, 1, 1), (0.01, -1, 1), (0.01, 1, -1), (0.3, 1, 1),
                              (0.01, 0, 1)]:
        direction = "greater" if expected > 0 else "less"
        assert verdict(p, sign, expected, [sign]) == metric_verdict(p, sign, direction)


def _per_image(diffs: dict[str, float], n: int = 12, seeds=tuple(range(8)), epoch: int = 5):
    """A per-image table: spurious - neutral = diffs[metric] * (1 + 0.1 image) * (1 + 0.1 seed)."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for i in range(n):
            base = {m: float(rng.normal(10, 2)) for m in METRICS}
            for condition in ("neutral", "spurious"):
                # positive, distinct differences within a seed, growing with the seed
                vals = {m: base[m] + (diffs.get(m, 0.0) * (1 + 0.1 * i) * (1 + 0.1 * seed)
                                      if condition == "spurious" else 0.0) for m in METRICS}
                rows.append({"seed": seed, "condition": condition, "layer": "fc1",
                             "epoch": epoch, "image_set": "tied", "image": i, **vals})
    return pd.DataFrame(rows)


def test_compare_conditions_differences_and_verdicts():
    df = pd.concat([_per_image({"N_bg": 2.0, "fg_ratio": 0.5}, epoch=5),
                    _per_image({}, epoch=0)])
    comp = compare_conditions(df, n_resamples=200)
    assert set(comp.columns) >= {"layer", "image_set", "epoch", "metric", "neutral", "spurious",
                                 "diff", "diff_ci_low", "diff_ci_high", "per_seed_diff", "n_pairs",
                                 "n_images", "min_p", "p_value", "p_holm", "effect_size",
                                 "expected", "verdict"}
    assert len(comp) == 2 * len(METRICS)
    assert set(comp.group) == {"docs/method.md section 4", "entropy", "diagnostic"}
    row = comp[(comp.epoch == 5) & (comp.metric == "N_bg")].iloc[0]
    # per seed s: mean over i = 0..11 of 2 (1 + 0.1 i) (1 + 0.1 s) = 3.1 (1 + 0.1 s);
    # over the 8 seeds: 3.1 * 1.35
    assert row["diff"] == pytest.approx(3.1 * 1.35)
    assert row["spurious"] - row["neutral"] == pytest.approx(row["diff"])
    assert row.diff_ci_low <= row["diff"] <= row.diff_ci_high
    # the seeds are the pairs: 8 of them (96 image pairs in all)
    assert row.n_pairs == 8 and row.n_images == 96
    # every seed positive: exact two-sided sign-flip p = 2 / 2^8, the smallest possible
    assert row.p_value == pytest.approx(2 / 256) and row.min_p == pytest.approx(2 / 256)
    # Holm within the docs/method.md section 4 family (N_fg p = 1, N_bg and fg_ratio 2/256): 3 x 2/256
    assert row.p_holm == pytest.approx(3 * 2 / 256)
    # d_z = mean / sd over seeds of 3.1 (1 + 0.1 s): 1.35 / (0.1 sd(0..7))
    assert row.effect_size == pytest.approx(1.35 / (0.1 * np.std(np.arange(8), ddof=1)))
    assert row.verdict == HOLDS and row.expected == "+"
    # fg_ratio rose although it should fall: significant the other way
    assert comp[(comp.epoch == 5) & (comp.metric == "fg_ratio")].verdict.iloc[0] == NOT_HOLDS
    assert EXPECTED["fg_ratio"] == -1
    # unchanged metrics and the identical epoch-0 pairs: no effect, p = 1
    zero = comp[comp.epoch == 0]
    assert (zero["diff"] == 0).all() and (zero.p_value == 1.0).all()
    assert (zero.verdict == INCONCLUSIVE).all()
    # Holm: adjusted p-values are never below the raw ones
    assert (comp.p_holm >= comp.p_value - 1e-12).all()


def test_two_seeds_give_no_verdict_however_many_images():
    """The images of a run are not replicates: 2 seeds x 40 consistent images stay unclear."""
    comp = compare_conditions(_per_image({"N_bg": 2.0}, n=40, seeds=(0, 1)), n_resamples=100)
    row = comp[comp.metric == "N_bg"].iloc[0]
    assert row.n_pairs == 2 and row.p_value == pytest.approx(0.5)
    assert row.verdict == INCONCLUSIVE
    # within each run the two networks do differ: the diagnostics say so, per seed
    within = within_run_tests(_per_image({"N_bg": 2.0}, n=12, seeds=(0, 1)))
    w = within[within.metric == "N_bg"]
    assert list(w.seed) == [0, 1] and (w.n_pairs == 12).all()
    # 12 positive distinct differences: exact Wilcoxon p = 2 / 2^12, rank-biserial r = 1
    assert np.allclose(w.p_value, 2 / 4096) and (w.effect_size == 1.0).all()
    assert w["diff"].to_numpy() == pytest.approx([3.1, 3.1 * 1.1])


def test_compare_conditions_needs_both_conditions():
    df = _per_image({})
    with pytest.raises(ValueError, match="both 'neutral' and 'spurious'"):
        compare_conditions(df[df.condition == "neutral"])


# --------------------------------------------------------------------------- config


def test_experiment_config_trains_only_the_baseline():
    cfg = make_config()
    exp = experiment_config(cfg, "spurious", 1, "/tmp/out")
    assert exp.name == "spurious-seed1" and exp.seed == 1
    assert exp.data.options["spurious_background"] == cfg.spurious_background
    assert experiment_config(cfg, "neutral", 1, "x").data.options["spurious_background"] == 0.0
    assert exp.teacher.epochs == 0 and exp.student.phase1_epochs == 0
    assert exp.student.phase2_epochs == 0 and exp.baseline.epochs == cfg.epochs
    assert exp.analysis.models == ["baseline"]
    assert exp.checkpoints == list(cfg.kept_epochs())
    assert cfg.quantified_epochs() == (0, cfg.epochs)
    # the analysed layers do not enter the training config: other layers reuse the runs
    conv = experiment_config(make_config(layers=("conv",)), "spurious", 1, "/tmp/out")
    assert conv.model_dump() == exp.model_dump()
    quick = make_config(quick=True)
    assert quick.mode == "quick" and quick.epochs < cfg.epochs


@pytest.mark.parametrize("kwargs, message", [
    ({"spurious_background": 0.0}, "spurious_background"),
    ({"classes": ("bird",)}, "at least 2"),
    ({"seeds": (0, 0)}, "repeat"),
    ({"analysed_epochs": (0, 3)}, "not kept checkpoints"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpuriousConfig(**kwargs)


def test_config_differences_by_hand():
    stored = {"name": "a", "seed": 0, "optim": {"lr": 0.1, "name": "sgd"}, "old_key": 1,
              "analysis": {"n_images": 3}}
    current = {"name": "b", "seed": 0, "optim": {"lr": 0.2, "name": "sgd"}, "new_key": True,
               "analysis": {"n_images": 5}}
    changed, unknown = config_differences(stored, current)
    assert changed == ["optim.lr: 0.1 -> 0.2"]  # name and analysis may differ
    assert unknown == ["new_key", "old_key"]


def test_weights_digest():
    torch.manual_seed(0)
    a = build_model("kdnet", 3, width=4, hidden=8)
    torch.manual_seed(0)
    b = build_model("kdnet", 3, width=4, hidden=8)
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.classifier[0].weight[0, 0] += 1e-3
    assert weights_digest(a) != weights_digest(b)


# --------------------------------------------------------------------------- rebuilding a page

LEGACY_PAGE = """# Spurious background

## What was run

```bash
python -m analyses.spurious --layers conv --out reports/spurious/conv
```

- mode `default`, 2026-12-06 01:00 UTC, 51 s in all (test images 0 s, training 1 s, \
accuracy 4 s, quantification 45 s, metrics and tests 1 s) -- 16 trained network(s) and \
0 quantification(s) were found in the work folder and reused, so these times are not those \
of a run from scratch; torch 2.14.1
- ...

Both networks of a seed start from the same weights (checked: equal weight digests for \
every seed), so ...
"""


def test_record_from_page_reads_the_run_section():
    record = record_from_page(LEGACY_PAGE)
    assert record == RunRecord(
        command="python -m analyses.spurious --layers conv --out reports/spurious/conv",
        generated_utc="2026-12-06 01:00 UTC",
        timings={"test images": 0.0, "training": 1.0, "accuracy": 4.0,
                 "quantification": 45.0, "metrics and tests": 1.0},
        total_s=51.0, reused=16, cached_units=0, same_initial_weights=True)
    assert RunRecord.from_dict(record.to_dict()) == record
    assert not record_from_page(LEGACY_PAGE.replace("(checked: equal", "(")).same_initial_weights
    with pytest.raises(ValueError, match="What was run"):
        record_from_page("# a page without its run section")


def test_load_config_round_trip_and_unknown_keys(tmp_path):
    import yaml
    cfg = make_config(seeds=(3, 4), layers=("conv",))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    assert load_config(path) == cfg
    path.write_text(yaml.safe_dump({**cfg.to_dict(), "images": 3}))
    with pytest.raises(ValueError, match="images"):
        load_config(path)


def test_render_only_errors(tmp_path, capsys):
    from analyses.spurious.__main__ import cli
    assert cli(["--render-only", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "per_image.csv" in err
    assert cli(["--render-only", "--seeds", "0,1", "--out", str(tmp_path)]) == 2
    assert "drop --seeds" in capsys.readouterr().err


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_pipeline_tiny_end_to_end(tmp_path):
    cfg = make_config(
        classes=("bird", "elephant"), image_size=32, train_per_class=4, val_per_class=2,
        test_per_class=6, epochs=1, checkpoints=(0, 1), images_per_set=2, grid=4, steps=2,
        samples=2, device="cpu", data_root=str(tmp_path / "data"), seeds=(0, 1),
        model_kwargs={"width": 4, "hidden": 16, "dropout": 0.0})
    res = run_validation(cfg, tmp_path / "work", show_progress=False)

    # accuracy: 2 seeds x 2 networks x 4 test sets
    assert len(res.accuracy) == 16
    assert set(res.accuracy.test_set) == {"tied", "neutral", "neutral/unrelated",
                                          "neutral/conflicting"}
    assert res.accuracy.accuracy.dropna().between(0, 1).all()
    # the analysed neutral images have backgrounds tied to no class
    assert (res.sets["neutral"].relation == "unrelated").all()
    assert (res.sets["tied"].relation == "tied").all()
    # per image: seeds x conditions x epochs x sets x images
    assert len(res.per_image) == 2 * 2 * 2 * 2 * 2
    assert set(METRICS) <= set(res.per_image.columns)
    # epoch 0: both conditions are the same network, computed once, identical numbers
    for seed in cfg.seeds:
        assert res.digests[(seed, "neutral", 0)] == res.digests[(seed, "spurious", 0)]
        assert res.digests[(seed, "neutral", 1)] != res.digests[(seed, "spurious", 1)]
    zero = res.comparison[res.comparison.epoch == 0]
    assert np.allclose(zero["diff"].to_numpy(dtype=float), 0.0)
    assert len(res.comparison) == 2 * 2 * len(METRICS)
    assert (res.comparison.n_pairs == 2).all()  # the seeds are the pairs
    # within-run diagnostics: one row per seed, set, epoch and metric
    assert len(res.within_run) == 2 * 2 * 2 * len(METRICS)
    assert (res.within_run.n_pairs <= cfg.images_per_set).all()

    index = write_report(res, tmp_path / "report", command="python -m analyses.spurious --test")
    text = index.read_text()
    for part in ("## What was run", "python -m analyses.spurious --test", "## Answer",
                 "unit of replication is the training run", "within_run.csv",
                 "## Accuracy", "## Control: epoch 0", "heatmaps.png", "per_image_fc1.png"):
        assert part in text
    for name in ("accuracy.csv", "comparison.csv", "within_run.csv", "per_image.csv",
                 "config.yaml", "environment.json", "heatmaps.png", "per_image_fc1.png",
                 "experiment_spurious-seed0.yaml"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    comp = pd.read_csv(tmp_path / "report" / "comparison.csv")
    assert {"metric", "group", "diff", "p_value", "p_holm", "verdict"} <= set(comp.columns)
    # the shared-threshold counts use the mean of both networks' H_bar
    pi = res.per_image
    for (_, _, _, _), d in pi.groupby(["seed", "layer", "epoch", "image_set"]):
        own = d.groupby("condition")["H_bar"].mean()
        assert np.allclose(d["H_bar_shared"], own.mean())
    assert (pi.N_bg_near + pi.N_bg_far == pi.N_bg).all()

    # the page and the seed-level tables rebuilt from the saved tables: the same bytes, but
    # for the line that names the rebuild
    report = tmp_path / "report"
    before = {n: (report / n).read_text() for n in ("index.md", "comparison.csv",
                                                      "within_run.csv", "run.json")}
    render_report(report, command="python -m analyses.spurious --render-only")
    for name in ("comparison.csv", "within_run.csv", "run.json"):
        assert (report / name).read_text() == before[name]
    rebuilt = (report / "index.md").read_text().splitlines()
    named = [line for line in rebuilt if "--render-only" in line]
    assert len(named) == 1 and "rebuilt from [per_image.csv]" in named[0]
    assert [line for line in rebuilt if line not in named] == before["index.md"].splitlines()

    # a second run reuses every trained network and every quantification
    again = run_validation(cfg, tmp_path / "work", show_progress=False)
    assert sorted(again.reused) == sorted(p.name for p in res.runs.values())
    assert again.cached_units == 6  # 2 seeds x (shared init + 2 final networks)
    pd.testing.assert_frame_equal(again.per_image, res.per_image)
    # a finished run trained with other settings is refused, naming the setting
    with pytest.raises(ValueError, match="lr: 0.002 -> 0.001"):
        run_validation(replace(cfg, lr=1e-3), tmp_path / "work", show_progress=False)
    assert not math.isnan(float(again.comparison["neutral"].iloc[0]))
