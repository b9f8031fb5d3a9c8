"""The report of the validation: ``index.md``, CSV tables and two figures, all generated.

Files written into the output folder (atomically):

- ``index.md``: what was run (command, settings, time), the accuracy check, the comparison
  tables, the answer in words, the figures;
- ``accuracy.csv``, ``comparison.csv`` (seed level), ``within_run.csv`` (per seed, over its
  images: diagnostics), ``per_image.csv``: the numbers behind it;
- ``heatmaps.png``: entropy grids of both networks on the same images, one colour scale;
- ``per_image_<layer>.png``: per-image ``N_bg``, ``N_bg_shared``, ``fg_ratio`` and
  ``H_bg - H_fg`` of both networks, paired by image;
- ``config.yaml`` (the validation's settings), ``experiment_<run>.yaml`` (the kdexplain
  config of one trained network), ``environment.json``, ``run.json`` (the command, its date
  and timings: what the page says about the run, :class:`RunRecord`).

The page and the seed-level tables can be rebuilt from the saved tables without training or
quantifying again: :func:`analyses.spurious.render.render_report`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from analyses.spurious.config import CONDITIONS, condition_name, experiment_config
from analyses.spurious.metrics import METRICS
from analyses.spurious.pipeline import SET_ORDER, ValidationResults
from kdexplain.concepts import HOLDS, INCONCLUSIVE, NOT_HOLDS, min_seed_p_value
from kdexplain.config import dump_config
from kdexplain.data import denormalize
from kdexplain.report.figures import outline_foreground, upsample_nearest
from kdexplain.utils import atomic_write_text, environment_info, write_json
from kdexplain.utils.render import (
    entropy_colorbar,
    format_number,
    format_p,
    format_percent,
    markdown_table,
    save_png,
    show_entropy,
)

__all__ = ["RunRecord", "write_page", "write_report"]

#: What a reader sees for each metric (the CSV columns keep the names on the left).
METRIC_TEXT = {
    "N_fg": "foreground concepts",
    "N_bg": "background concepts",
    "fg_ratio": "foreground share",
    "H_fg": "mean foreground entropy",
    "H_bg": "mean background entropy",
    "bg_minus_fg": "background minus foreground entropy",
    "N_bg_near": "background concepts touching the object",
    "N_bg_far": "background concepts away from the object",
    "N_fg_shared": "foreground concepts at a shared threshold",
    "N_bg_shared": "background concepts at a shared threshold",
}
SET_TEXT = {"tied": "tied images (background = the class's photo family)",
            "neutral": "neutral images (background tied to no class)"}


# --------------------------------------------------------------------------- tables

def accuracy_markdown(acc: pd.DataFrame) -> str:
    """Accuracy per network (rows) and test set (columns), mean over seeds last."""
    sets = list(dict.fromkeys(acc["test_set"]))
    wide = acc.pivot_table(index=["condition", "seed"], columns="test_set", values="accuracy")
    val = acc.groupby(["condition", "seed"])["val_acc"].first()
    n = acc.groupby("test_set")["n"].first()
    head = ["network", "seed", "own validation"] + [f"{s} (n={int(n[s])})" for s in sets]
    rows = []
    for condition in CONDITIONS:
        for seed in sorted(acc.loc[acc.condition == condition, "seed"].unique()):
            cells = [condition, str(seed), format_percent(val[(condition, seed)])]
            cells += [format_percent(wide.loc[(condition, seed), s]) for s in sets]
            rows.append(cells)
        mean = wide.loc[condition].mean()
        cells = [f"**{condition}**", "mean", format_percent(val[condition].mean())]
        cells += [f"**{format_percent(mean[s])}**" for s in sets]
        rows.append(cells)
    return markdown_table(pd.DataFrame(rows, columns=head), "lrr" + "r" * len(sets))


def comparison_markdown(comp: pd.DataFrame) -> str:
    """One comparison block (one layer, image set and epoch) as a Markdown table."""
    head = ["metric", "kind", "expected", "neutral net", "spurious net", "difference [95% CI]",
            "per seed", "seeds", "sign-flip p", "Holm p", "d_z", "verdict"]
    rows = []
    for r in comp.itertuples():
        rows.append([
            METRIC_TEXT[r.metric], r.group, r.expected, format_number(r.neutral), format_number(r.spurious),
            f"{format_number(r.diff)} [{format_number(r.diff_ci_low)}, {format_number(r.diff_ci_high)}]", r.per_seed_diff,
            str(r.n_pairs), format_p(r.p_value), format_p(r.p_holm), format_number(r.effect_size, 2),
            f"**{r.verdict}**" if r.verdict != INCONCLUSIVE else r.verdict,
        ])
    return markdown_table(pd.DataFrame(rows, columns=head), "lll" + "r" * 8 + "l")


# --------------------------------------------------------------------------- figures

def plot_heatmaps(res: ValidationResults, path: Path, *, layer: str, seed: int, epoch: int,
                  per_set: int = 3) -> Path:
    """Entropy grids of the neutral and the spurious network on the same images.

    Columns: ``per_set`` tied then ``per_set`` neutral images; rows: the image, the neutral
    network's entropy, the spurious network's. One colour scale (2nd-98th percentile of
    the grids shown); the foreground is outlined; concept cells (``H_bar - H_i > b``, each
    network's own ``H_bar``) are dotted, white on the foreground, red on the background.
    """
    cfg = res.cfg
    cols = []
    for name in SET_ORDER:
        k = min(per_set, len(res.sets[name]))
        cols += [(name, i) for i in range(k)]
    pi = res.per_image
    grids = {}
    for condition in CONDITIONS:
        ent = res.grids[(seed, condition, layer, epoch)]
        grids[condition] = [ent[res.spans[name]][i] for name, i in cols]
    shown = np.concatenate([np.ravel(g) for c in CONDITIONS for g in grids[c]])
    shown = shown[np.isfinite(shown)]
    vmin, vmax = (np.percentile(shown, [2, 98]) if shown.size else (-3.0, -2.0))
    fig = Figure(figsize=(1.9 * len(cols) + 0.9, 6.0))
    axes = fig.subplots(3, len(cols), squeeze=False)
    im = None
    for j, (name, i) in enumerate(cols):
        s = res.sets[name]
        img = denormalize(s.images[i]).clamp(0, 1).permute(1, 2, 0).numpy()
        mask = s.masks[i].numpy()
        ax = axes[0, j]
        ax.imshow(img, interpolation="nearest")
        outline_foreground(ax, mask.astype(float), 0.8)
        ax.set_title(f"{name} #{i}\n{cfg.classes[int(s.labels[i])]}", fontsize=8)
        for r, condition in enumerate(CONDITIONS, start=1):
            ax = axes[r, j]
            g = grids[condition][j]
            px = upsample_nearest(g, mask.shape)
            im = show_entropy(ax, px, vmin, vmax)
            outline_foreground(ax, mask.astype(float), 0.8)
            row = pi[(pi.seed == seed) & (pi.condition == condition) & (pi.layer == layer)
                     & (pi.epoch == epoch) & (pi.image_set == name) & (pi.image == i)]
            if len(row) and np.isfinite(g).all():
                h_bar = float(row["H_bar"].iloc[0])
                concept = (h_bar - g) > cfg.concept_threshold
                fg = s.foreground[i]
                scale = mask.shape[0] / g.shape[0]
                for sel, colour, size in ((concept & fg, "white", 3), (concept & ~fg, "#ff2a2a", 4)):
                    rr, cc = np.nonzero(sel)
                    ax.scatter((cc + 0.5) * scale - 0.5, (rr + 0.5) * scale - 0.5, s=size,
                               c=colour, linewidths=0)
                ax.set_title(f"concepts: {int(row['N_fg'].iloc[0])} foreground,\n"
                             f"{int(row['N_bg'].iloc[0])} background", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for r, label in enumerate(["image", "neutral net", "spurious net"]):
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.9, top=0.9, bottom=0.03, wspace=0.08, hspace=0.45)
    cax = fig.add_axes([0.92, 0.06, 0.015, 0.55])
    if im is not None:
        entropy_colorbar(fig, im, cax=cax)
    fig.suptitle(f"layer {layer}, seed {seed}, epoch {epoch}: entropy of each cell "
                 "(dots: concept cells; outline: foreground)", fontsize=9)
    return save_png(fig, path, dpi=110)


def plot_per_image(res: ValidationResults, path: Path, *, layer: str, epoch: int) -> Path:
    """Per-image ``N_bg``, ``N_bg_shared``, ``fg_ratio`` and ``H_bg - H_fg`` of both networks.

    Rows: the two analysed image sets; columns: the metrics. Each line joins one image's
    value for the neutral network (left) and the spurious network (right) of one seed
    (colour: seed); black: the mean over seeds of each seed's mean, with its 95% bootstrap
    interval over seeds (the training run is the unit); dashed: the shared initialisation
    (epoch 0) when it was quantified.
    """
    cfg = res.cfg
    shown = ("N_bg", "N_bg_shared", "fg_ratio", "bg_minus_fg")
    pi = res.per_image[(res.per_image.layer == layer)]
    fig = Figure(figsize=(13.5, 6.2))
    axes = fig.subplots(len(SET_ORDER), len(shown), squeeze=False)
    seed_colours = [matplotlib.colormaps["tab10"](i) for i in range(10)]
    rng = np.random.default_rng(0)
    for r, name in enumerate(SET_ORDER):
        df = pi[(pi.image_set == name) & (pi.epoch == epoch)]
        init = pi[(pi.image_set == name) & (pi.epoch == 0)] if epoch != 0 else pi.iloc[:0]
        comp = res.comparison
        for c, metric in enumerate(shown):
            ax = axes[r, c]
            for k, seed in enumerate(cfg.seeds):
                d = df[df.seed == seed].pivot_table(index="image", columns="condition",
                                                    values=metric)
                if d.empty:
                    continue
                jitter = rng.uniform(-0.04, 0.04, size=len(d))
                colour = seed_colours[k % len(seed_colours)]
                for (_, v), jx in zip(d.iterrows(), jitter, strict=True):
                    ax.plot([0 + jx, 1 + jx], [v["neutral"], v["spurious"]], color=colour,
                            alpha=0.35, lw=0.8, marker="o", ms=2.5)
                ax.plot([], [], color=colour, label=f"seed {seed}")
            for x, condition in enumerate(CONDITIONS):
                per_seed = df[df.condition == condition].groupby("seed")[metric].mean()
                vals = per_seed.to_numpy(dtype=float)
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    boot = rng.choice(vals, size=(2000, vals.size)).mean(axis=1)
                    lo, hi = np.percentile(boot, [2.5, 97.5])
                    ax.errorbar([x + (0.18 if x else -0.18)], [vals.mean()],
                                yerr=[[vals.mean() - lo], [hi - vals.mean()]], fmt="s",
                                color="black", ms=5, capsize=3, zorder=5)
            if len(init):
                ax.axhline(float(np.nanmean(init[metric])), color="grey", ls="--", lw=1,
                           label="epoch 0 (shared init)")
            row = comp[(comp.layer == layer) & (comp.image_set == name) & (comp.epoch == epoch)
                       & (comp.metric == metric)]
            title = METRIC_TEXT[metric]
            if len(row):
                title += f"\ndiff {format_number(float(row['diff'].iloc[0]))}, Holm p {format_p(float(row['p_holm'].iloc[0]))}"
            ax.set_title(title, fontsize=8)
            ax.set_xticks([0, 1])
            ax.set_xticklabels(["neutral net", "spurious net"], fontsize=8)
            ax.set_xlim(-0.45, 1.45)
            ax.tick_params(axis="y", labelsize=7)
            if c == 0:
                ax.set_ylabel(f"{name} images", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right", frameon=False)
    fig.suptitle(f"layer {layer}, epoch {epoch}: per-image metrics, neutral vs spurious network "
                 "(same images, same noise; black: mean over seeds, 95% interval over seeds)",
                 fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.89, top=0.88, bottom=0.06, wspace=0.3, hspace=0.45)
    return save_png(fig, path, dpi=110)


# --------------------------------------------------------------------------- text

def _row(comp: pd.DataFrame, layer: str, name: str, epoch: int, metric: str) -> pd.Series | None:
    r = comp[(comp.layer == layer) & (comp.image_set == name) & (comp.epoch == epoch)
             & (comp.metric == metric)]
    return r.iloc[0] if len(r) else None


def _seeds_agreeing(r: pd.Series) -> str:
    """``"in 7 of 8 seeds"``: how many per-seed differences share the sign of the mean."""
    diffs = [float(d) for d in str(r["per_seed_diff"]).split(" / ") if d.strip()]
    sign = np.sign(r["diff"])
    return f"in {sum(np.sign(d) == sign for d in diffs)} of {len(diffs)} seeds"


def _metric_sentence(r: pd.Series) -> str:
    direction = "higher" if r["diff"] > 0 else "lower" if r["diff"] < 0 else "equal"
    return (f"{METRIC_TEXT[r['metric']]} is {direction} for the spurious network "
            f"{_seeds_agreeing(r)} "
            f"({format_number(r['spurious'])} vs {format_number(r['neutral'])}; difference {format_number(r['diff'])}, "
            f"95% CI [{format_number(r['diff_ci_low'])}, {format_number(r['diff_ci_high'])}], Holm p {format_p(r['p_holm'])}): "
            f"*{r['verdict']}*")


def reliance_sentences(acc: pd.DataFrame) -> tuple[list[str], bool]:
    """Does the spurious network use the background? Read from the accuracies.

    It does when, for every seed, its accuracy on tied test images exceeds its accuracy on
    neutral ones by more than 15 points and exceeds the neutral network's on tied images.
    """
    out = []
    ok = True
    for seed in sorted(acc.seed.unique()):  # one line per seed
        a = acc[acc.seed == seed].set_index(["condition", "test_set"])["accuracy"]
        s_t, s_n = a[("spurious", "tied")], a[("spurious", "neutral")]
        n_t, n_n = a[("neutral", "tied")], a[("neutral", "neutral")]
        s_c = a.get(("spurious", "neutral/conflicting"), float("nan"))
        uses = (s_t - s_n > 0.15) and (s_t > n_t)
        ok &= bool(uses)
        out.append(f"seed {seed}: the spurious network scores {format_percent(s_t)} on tied and "
                   f"{format_percent(s_n)} on neutral test images ({format_percent(s_c)} where the background "
                   f"belongs to another class); the neutral network {format_percent(n_t)} and {format_percent(n_n)}.")
    return out, ok


def learnt_objects(acc: pd.DataFrame, chance: float, margin: float = 0.10) -> bool:
    """Whether every neutral network beats chance by ``margin`` on neutral test images."""
    sel = acc[(acc.condition == "neutral") & (acc.test_set == "neutral")]
    return bool(len(sel)) and bool((sel["accuracy"] > chance + margin).all())


def _sets_where(comp: pd.DataFrame, layer: str, epoch: int, metric: str, wanted: str
                ) -> list[str]:
    return [n for n in SET_ORDER
            if (r := _row(comp, layer, n, epoch, metric)) is not None and r["verdict"] == wanted]


def _on(sets: list[str]) -> str:
    return " and ".join(sets) + " images" if sets else "neither image set"


def _brief(r: pd.Series | None) -> str:
    if r is None:
        return "-"
    return (f"{format_number(r['spurious'])} vs {format_number(r['neutral'])} on {r['image_set']} images "
            f"({_seeds_agreeing(r)}, Holm p {format_p(r['p_holm'])}, *{r['verdict']}*)")


def _mean_h_bar(res: ValidationResults, layer: str, name: str, epoch: int, condition: str
                ) -> float:
    pi = res.per_image
    d = pi[(pi.layer == layer) & (pi.image_set == name) & (pi.epoch == epoch)
           & (pi.condition == condition)]
    return float(d["H_bar"].mean()) if len(d) else float("nan")


def _layer_answer_lines(res: ValidationResults, layer: str) -> list[str]:
    """The answer for one layer at the final epoch: which counts see the background."""
    cfg = res.cfg
    comp = res.comparison
    final = cfg.epochs
    lines = []
    nbg = _sets_where(comp, layer, final, "N_bg", HOLDS)
    nbg_opp = _sets_where(comp, layer, final, "N_bg", NOT_HOLDS)
    ratio = _sets_where(comp, layer, final, "fg_ratio", HOLDS)
    nfg = _sets_where(comp, layer, final, "N_fg", HOLDS)
    gap = _sets_where(comp, layer, final, "bg_minus_fg", HOLDS)
    lines.append(f"**Answer for layer {layer} (final epoch {final}).**")
    lines.append("")
    if nbg:
        lines.append(f"- **`N_bg` holds** on {_on(nbg)}: the spurious network "
                     "has more background concepts.")
    else:
        lines.append(
            "- **`N_bg` holds on neither image set**: the spurious network does not have "
            "significantly more background concepts"
            + (f"; on {_on(nbg_opp)} it has significantly *fewer* (*does not hold*)"
               if nbg_opp else "")
            + ". Counted the docs/method.md section 4 way, the expected ground truth is not recovered.")
    if ratio:
        lines.append(f"- **`fg_ratio` holds** on {_on(ratio)}: a lower "
                     "foreground share for the spurious network.")
    else:
        lines.append("- **`fg_ratio` holds on neither image set**.")
    if nfg or gap:
        parts = []
        if nfg:
            parts.append(f"`N_fg` falls (fewer foreground concepts) on {_on(nfg)}")
        if gap:
            parts.append(f"the entropy gap `H_bg - H_fg` shrinks on {_on(gap)}")
        lines.append("- " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:]
                     + ": the measure does see the network turn from the object towards "
                     "the background, in the balance between the two.")
    else:
        lines.append("- Nor do `N_fg` or the entropy gap `H_bg - H_fg` differ significantly.")
    if not nbg:
        for name in SET_ORDER:
            hb_n = _mean_h_bar(res, layer, name, final, "neutral")
            hb_s = _mean_h_bar(res, layer, name, final, "spurious")
            r = _row(comp, layer, name, final, "N_bg_shared")
            moved = name in _sets_where(comp, layer, final, "H_bg", HOLDS)
            lines.append(
                f"- The threshold, {name} images: `H_bar`, the spurious network's own mean "
                f"background entropy, is {format_number(hb_s)} nats against {format_number(hb_n)} for the "
                "neutral network"
                + (" (significantly lower: the threshold moved with the background)"
                   if moved else " (not significantly lower)")
                + "; counted against one threshold shared by both (the mean of the two "
                f"`H_bar`), background concepts are {_brief(r)}.")
        near = [_row(comp, layer, n, final, "N_bg_near") for n in SET_ORDER]
        far = [_row(comp, layer, n, final, "N_bg_far") for n in SET_ORDER]
        lines.append(
            "- Where the background concepts lie: on background cells touching the object "
            "(`N_bg_near`, the object's outline in cells less than half covered) "
            + "; ".join(_brief(r) for r in near)
            + ". On the far background (`N_bg_far`) "
            + "; ".join(_brief(r) for r in far) + ".")
        near_opp = _sets_where(comp, layer, final, "N_bg_near", NOT_HOLDS)
        if near_opp:
            lines.append(
                f"- On {_on(near_opp)}, the neutral network has significantly more "
                "background concepts on the cells touching the object: part of what "
                "`N_bg` counts for a network that reads the object is the object's own "
                "outline, which lowers the contrast `N_bg` is meant to draw.")
        moved = [m for m in ("N_bg_shared", "H_bg", "fg_ratio")
                 if _sets_where(comp, layer, final, m, HOLDS)]
        lines.append(
            "- Reading: a concept is a cell at least b = "
            f"{cfg.concept_threshold} nats below `H_bar`, and `H_bar` is each network's "
            "*own* mean background entropy (the quantification normalises the distortion "
            "by `D0` per image and network, so entropies say where a network is "
            "sensitive relative to itself). A network that reads the whole background "
            "lowers the background cells and `H_bar` together, so `N_bg` need not grow. "
            + (f"Here the shift shows in {', '.join(f'`{m}`' for m in moved)} (on at "
               "least one image set). "
               if moved else "Here nothing else shows the shift either. ")
            + "`N_bg` as defined counts background cells that stand out from the rest of "
            "the background; it does not measure how much the background is used.")
    discussed = ("N_bg", "N_bg_near") if not nbg else ("N_bg",)
    opposite = [(m, n) for m in METRICS for n in SET_ORDER
                if m not in discussed and (r := _row(comp, layer, n, final, m)) is not None
                and r["verdict"] == NOT_HOLDS]
    if opposite:
        lines.append("- Other metrics that do not hold (significant in the unexpected direction): "
                     + "; ".join(f"`{m}` on {n} images" for m, n in opposite) + ".")
    lines.append("")
    lines.append(f"<details><summary>Every metric at layer {layer}, in words</summary>")
    lines.append("")
    for name in SET_ORDER:
        lines.append(f"- On {SET_TEXT[name]}:")
        for metric in METRICS:
            r = _row(comp, layer, name, final, metric)
            if r is not None:
                lines.append(f"  - {_metric_sentence(r)}.")
    lines += ["", "</details>", ""]
    return lines


def answer_lines(res: ValidationResults) -> list[str]:
    """The plain answer: which metrics hold, on which images, at which layer.

    Every statement is derived from the comparison table and the accuracies of ``res``.
    """
    cfg = res.cfg
    lines = []
    reliance, uses = reliance_sentences(res.accuracy)
    chance = 1.0 / len(cfg.classes)
    lines.append("**Does the spurious network really use the background?** "
                 + ("Yes" if uses else "Not clearly") + f" (chance is {format_percent(chance)}):")
    lines += [f"- {s}" for s in reliance]
    learnt = learnt_objects(res.accuracy, chance)
    lines.append("- The neutral network " + (
        "has learnt the objects: above chance by more than 10 points on neutral images for "
        "every seed." if learnt else
        "has *not* clearly learnt the objects (within 10 points of chance on neutral images "
        "for some seed): the comparison is then between a background reader and a network "
        "that reads little of anything, and says less about the measure."))
    lines.append("")
    for layer in cfg.layers:
        lines += _layer_answer_lines(res, layer)
    return lines


def _control_lines(res: ValidationResults, record: RunRecord) -> list[str]:
    cfg = res.cfg
    if 0 not in cfg.quantified_epochs():
        return []
    comp = res.comparison[res.comparison.epoch == 0]
    zero = bool(len(comp)) and bool(np.allclose(comp["diff"].to_numpy(dtype=float), 0.0))
    lines = ["## Control: epoch 0", ""]
    lines.append(
        "Both networks of a seed start from the same weights "
        + ("(checked: equal weight digests for every seed)" if record.same_initial_weights
           else "(NOT the case here: the digests differ)")
        + ", so at epoch 0 they are one network; the pipeline computes it once. "
        + ("Every difference at epoch 0 is exactly 0, as it must be." if zero else
           "Differences at epoch 0 are not all 0: the comparison is broken.")
        + " The values below are what training moves away from (dashed lines in the "
          "per-image figure).")
    lines.append("")
    pi = res.per_image[(res.per_image.epoch == 0) & (res.per_image.condition == "neutral")]
    head = ["layer", "image set"] + [METRIC_TEXT[m] for m in METRICS]
    rows = [[layer, name] + [format_number(float(d[m].mean())) for m in METRICS]
            for (layer, name), d in pi.groupby(["layer", "image_set"], sort=False)]
    lines += [markdown_table(pd.DataFrame(rows, columns=head), "ll" + "r" * len(METRICS)), ""]
    return lines


def _run_lines(res: ValidationResults, record: RunRecord, env: dict, exp_name: str,
               rendered_by: str | None = None) -> list[str]:
    """The title, what the report asks, and what was run (command, data, networks, statistics)."""
    cfg = res.cfg
    rendered = ([f"- this page, [comparison.csv](comparison.csv) and [within_run.csv](within_run.csv) "
                 f"were rebuilt from [per_image.csv](per_image.csv) and [accuracy.csv](accuracy.csv) "
                 f"(no training, no quantification) by `{rendered_by}`; the figures and the "
                 "tables they were rebuilt from are the run's"] if rendered_by else [])
    return [
        "# Spurious background: does the concept measure see a network rely on it?",
        "",
        "Generated by `analyses/spurious` (never hand-edited). The built-in `scenes` dataset "
        "ties the background photo family to the class with probability `spurious_background` "
        f"= p. Per seed, the same architecture is trained twice from the same initial "
        f"weights: the **neutral** network with p = 0 and the **spurious** network with "
        f"p = {cfg.spurious_background}. Both are then quantified (docs/method.md section 3) on the **same** "
        "images with the same noise, and their visual concepts counted (docs/method.md section 4). Ground "
        "truth: the spurious network relies on the background, so the toolkit should find "
        "more background concepts `N_bg` and a lower `fg_ratio` for it.",
        "",
        "## What was run",
        "",
        "```bash",
        record.command,
        "```",
        "",
        f"- mode `{cfg.mode}`, {record.generated_utc}, {record.total_s:.0f} s in all ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in record.timings.items()) + ")"
        + (f" -- {record.reused} trained network(s) and {record.cached_units} quantification(s) "
           "were found in the work folder and reused, so these times are not those of a run "
           "from scratch" if record.reused or record.cached_units else "") + "; "
        f"torch {env.get('packages', {}).get('torch', '?')}, {env.get('torch_threads', '?')} thread(s), device {cfg.device}, git {env.get('git_revision', '?')}",
        f"- data: `scenes`, classes {', '.join(cfg.classes)} (class c tied to photo family c), "
        f"{cfg.image_size} px, {cfg.train_per_class} training / {cfg.val_per_class} validation "
        f"/ {cfg.test_per_class} test images per class, generation seed {cfg.data_seed}",
        f"- networks: `{cfg.arch}` {cfg.model_kwargs}, {cfg.epochs} epochs of {cfg.optimizer} "
        f"(lr {cfg.lr}, {cfg.schedule} decay, batch {cfg.batch_size}, weight decay "
        f"{cfg.weight_decay}), seeds {', '.join(map(str, cfg.seeds))}; trained with "
        "`kdexplain.train.train_triplet` (baseline role only), checkpoints at epochs "
        f"{', '.join(map(str, cfg.kept_epochs()))}",
        f"- analysed images: {cfg.images_per_set} **tied** test images (rendered with p = 1) and "
        f"{cfg.images_per_set} **neutral** ones (rendered with p = 0, only backgrounds tied "
        "to no class), balanced over classes, the same for every network",
        f"- quantification: `kdexplain.quantify`, layer(s) {', '.join(cfg.layers)}, grid "
        f"{cfg.grid}x{cfg.grid}, `default` preset with samples = "
        f"{cfg.samples if cfg.samples is not None else 'preset'}, steps = "
        f"{cfg.steps if cfg.steps is not None else 'preset'}, noise seed {cfg.quantify_seed}; "
        "checkpoints "
        f"{', '.join(map(str, cfg.quantified_epochs()))}",
        f"- concepts: `kdexplain.concepts`, b = {cfg.concept_threshold}, `H_bar` "
        f"{cfg.baseline_entropy} over each set's images per network and checkpoint, masks to "
        f"grid by the `{cfg.mask_rule}` rule",
        "- statistics: the unit of replication is the training run (a seed: the neutral and "
        "the spurious network of one seed share their initial weights). Per seed, difference "
        "= spurious - neutral of the means over that seed's images; exact two-sided sign-flip "
        "test of the per-seed differences (`kdexplain.concepts.seed_paired_test`; with "
        f"{len(cfg.seeds)} seeds the smallest possible p is "
        f"{format_p(min_seed_p_value(len(cfg.seeds)))}), Holm-corrected within each kind of "
        "metric (docs/method.md section 4 counts, entropies, diagnostics) of one layer, image set and epoch; "
        "effect size Cohen's d_z over seeds; 95% bootstrap interval resampling seeds, then "
        "images. Each metric's claim is its expected sign, and its verdict is the core's "
        "(`kdexplain.concepts.metric_verdict`, docs/method.md section 5.3) with one rule more: "
        "*holds* needs Holm p < 0.05 in the expected direction and no seed pointing the other "
        "way (else *inconclusive*); *does not hold*: Holm p < 0.05 the other way; "
        "*inconclusive* otherwise. The images of one seed are not independent "
        "evidence about the training condition: their Wilcoxon tests, one per seed, are "
        "within-run diagnostics in [within_run.csv](within_run.csv), and no verdict rests on "
        "them.",
        "- settings: [config.yaml](config.yaml); the kdexplain config of one network: "
        f"[experiment_{exp_name}.yaml](experiment_{exp_name}.yaml)",
        *rendered,
        "",
    ]


def _table_lines(res: ValidationResults) -> list[str]:
    """The accuracy table and one comparison table per layer, image set and analysed epoch."""
    cfg = res.cfg
    final = cfg.epochs
    lines = [
        "## Accuracy: the spurious network uses the background",
        "",
        "Final epoch, test split. *tied*: rendered with p = 1; *neutral*: rendered with p = 0; "
        "*neutral/unrelated* and *neutral/conflicting*: its images whose background family is "
        "tied to no class / to another class. *own val*: the run's validation split, rendered "
        "with its own p. Table: [accuracy.csv](accuracy.csv).",
        "",
        accuracy_markdown(res.accuracy),
        "",
        "## Concept metrics, neutral vs spurious network",
        "",
        "Means over seeds of each seed's mean over its images; *per seed*: each seed's "
        "difference; *expected*: the sign of spurious - neutral if the "
        "measure sees the reliance on the background. Table: [comparison.csv](comparison.csv); "
        "per image: [per_image.csv](per_image.csv).",
        "",
    ]
    for layer in cfg.layers:
        for name in SET_ORDER:
            block = res.comparison[(res.comparison.layer == layer)
                                   & (res.comparison.image_set == name)
                                   & (res.comparison.epoch == final)]
            lines += [f"### Layer {layer}, {SET_TEXT[name]}, epoch {final}", "",
                      comparison_markdown(block), ""]
    mids = [e for e in cfg.quantified_epochs() if e not in (0, final)]
    for epoch in mids:
        for layer in cfg.layers:
            for name in SET_ORDER:
                block = res.comparison[(res.comparison.layer == layer)
                                       & (res.comparison.image_set == name)
                                       & (res.comparison.epoch == epoch)]
                lines += [f"### Layer {layer}, {name} images, epoch {epoch}", "",
                          comparison_markdown(block), ""]
    return lines


def _figure_lines(res: ValidationResults, figures: list[Path]) -> list[str]:
    """The figures with their captions."""
    cfg = res.cfg
    final = cfg.epochs
    first_seed = cfg.seeds[0]
    lines = [
        "## Figures",
        "",
        f"![entropy heatmaps]({figures[0].name})",
        "",
        f"Entropy of every cell for the neutral and the spurious network of seed {first_seed} "
        f"at layer {cfg.layers[0]}, epoch {final}, on the same images (one colour scale; "
        "bright = low entropy = used). Dots mark concept cells (white: foreground, red: "
        "background); the cyan line outlines the object.",
        "",
    ]
    for fig_path, layer in zip(figures[1:], cfg.layers, strict=True):
        lines += [f"![per-image metrics, {layer}]({fig_path.name})", "",
                  "Per image, background concepts (`N_bg`), background concepts at a shared "
                  "threshold (`N_bg_shared`), the foreground share (`fg_ratio`) and background "
                  f"minus foreground entropy (`bg_minus_fg`) at layer {layer}, epoch "
                  f"{final}: each line joins one image's value for the neutral (left) and the "
                  "spurious network (right) of one seed; black squares: the mean over seeds "
                  "of each seed's mean, with a 95% bootstrap interval over seeds; dashed: the "
                  "shared initialisation.", ""]
    return lines


def _definition_lines(exp_name: str, figures: list[Path]) -> list[str]:
    """What each number means, and the files beside the page."""
    return [
        "## Definitions",
        "",
        "- `H_i`: entropy of grid cell i (nats per dimension), learnt by the perturbation "
        "objective `D(sigma)/D0 - lambda_H mean_i H_i` (docs/method.md section 3); low = the layer is sensitive "
        "to that cell.",
        "- `H_bar`: mean background entropy, pooled over a set's images, per network and "
        "checkpoint; concept: `H_bar - H_i > b` (docs/method.md section 4).",
        "- `N_fg`, `N_bg`: concept cells on the object / on the background per image; "
        "`fg_ratio` = N_fg / (N_fg + N_bg) (0 when both are 0), the paper's lambda.",
        "- `H_fg`, `H_bg`: mean entropy of an image's object / background cells; "
        "`bg_minus_fg` = H_bg - H_fg (> 0: the object is used more than the background).",
        "- `N_bg_near`, `N_bg_far`: `N_bg` split into background cells that touch the object "
        "(8-neighbours of an object cell on the grid) and the others.",
        "- `N_fg_shared`, `N_bg_shared`: concept counts against one `H_bar` shared by the two "
        "networks of a seed (the mean of their own `H_bar` on that image set and checkpoint), "
        "so that a shift of the whole background does not move the threshold.",
        "- *kind*: `docs/method.md section 4` = the paper's counts, each network against its own `H_bar`; "
        "`entropy` = mean entropies; `diagnostic` = the counts above that locate the effect.",
        "",
        "Files: " + ", ".join(f"[{p}]({p})" for p in [
            "accuracy.csv", "comparison.csv", "within_run.csv", "per_image.csv", "config.yaml",
            f"experiment_{exp_name}.yaml", "environment.json", "run.json"]
            + [f.name for f in figures]),
        "",
    ]


@dataclass
class RunRecord:
    """What the page says about the run that produced the tables, saved as ``run.json``.

    Attributes
    ----------
    command : str
        The command line of the run.
    generated_utc : str
        When the run ended, e.g. ``"2026-12-06 00:55 UTC"``.
    timings : dict step -> seconds
    total_s : float
        Seconds in all.
    reused : int
        Trained networks found finished in the work folder.
    cached_units : int
        Quantifications read from the cache.
    same_initial_weights : bool
        Whether the two networks of every seed had equal weight digests at epoch 0.
    """

    command: str
    generated_utc: str
    timings: dict
    total_s: float
    reused: int
    cached_units: int
    same_initial_weights: bool

    @classmethod
    def of(cls, res: ValidationResults, command: str) -> RunRecord:
        """The record of a run that just finished (now, its timings and digests)."""
        same = all(res.digests.get((s, "neutral", 0)) == res.digests.get((s, "spurious", 0))
                   for s in res.cfg.seeds)
        return cls(command, datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   dict(res.timings), float(sum(res.timings.values())), len(res.reused),
                   int(res.cached_units), bool(same))

    def to_dict(self) -> dict:
        """JSON form; the timings as ``[step, seconds]`` pairs, which keep their order."""
        return {**asdict(self), "timings": [[k, float(v)] for k, v in self.timings.items()]}

    @classmethod
    def from_dict(cls, d: dict) -> RunRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "timings": {str(k): float(v) for k, v in d["timings"]}})


def write_page(res: ValidationResults, out: Path, record: RunRecord, env: dict,
               figures: list[Path], rendered_by: str | None = None) -> Path:
    """Write ``index.md`` and ``run.json`` into ``out`` from the results and the run's record.

    Parameters
    ----------
    res : ValidationResults
        Only ``cfg``, ``accuracy``, ``per_image`` and ``comparison`` are read.
    out : Path
    record : RunRecord
    env : dict
        The run's ``environment.json``.
    figures : list of Path
        ``heatmaps.png``, then one ``per_image_<layer>.png`` per layer.
    rendered_by : str, optional
        The command that rebuilt the page from the saved tables (named on the page).

    Returns
    -------
    Path of ``index.md``.
    """
    exp_name = condition_name("spurious", res.cfg.seeds[0])
    write_json(out / "run.json", record.to_dict())
    lines = [*_run_lines(res, record, env, exp_name, rendered_by), "## Answer", "",
             *answer_lines(res), *_table_lines(res), *_control_lines(res, record),
             *_figure_lines(res, figures), *_definition_lines(exp_name, figures)]
    index = out / "index.md"
    atomic_write_text(index, "\n".join(lines))
    return index


def write_report(res: ValidationResults, out_dir: str | Path, *, command: str) -> Path:
    """Write ``index.md``, the CSV tables, the figures and the settings into ``out_dir``.

    Parameters
    ----------
    res : ValidationResults
    out_dir : str or Path
    command : str
        The command line that produced the results (quoted in the report).

    Returns
    -------
    Path of ``index.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = res.cfg
    final = cfg.epochs

    atomic_write_text(out / "accuracy.csv", res.accuracy.to_csv(index=False))
    atomic_write_text(out / "comparison.csv", res.comparison.to_csv(index=False))
    atomic_write_text(out / "within_run.csv", res.within_run.to_csv(index=False))
    atomic_write_text(out / "per_image.csv", res.per_image.to_csv(index=False))
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    first_seed = cfg.seeds[0]
    exp_name = condition_name("spurious", first_seed)
    work_dir = Path(next(iter(res.runs.values()))).parent if res.runs else Path(".")
    atomic_write_text(out / f"experiment_{exp_name}.yaml",
                      dump_config(experiment_config(cfg, "spurious", first_seed, work_dir)))
    env = environment_info()
    write_json(out / "environment.json", env)

    figures = [plot_heatmaps(res, out / "heatmaps.png", layer=cfg.layers[0], seed=first_seed,
                             epoch=final)]
    for layer in cfg.layers:
        figures.append(plot_per_image(res, out / f"per_image_{layer}.png", layer=layer,
                                      epoch=final))

    return write_page(res, out, RunRecord.of(res, command), env, figures)
