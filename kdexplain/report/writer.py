"""One entry point that writes a whole report folder: :func:`write_report`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from kdexplain.concepts import (
    ROLE_LABELS,
    ConceptAnalysis,
    ThresholdCurve,
    distance_drivers,
    drivers_sentence,
    min_seed_p_value,
)
from kdexplain.report.figures import (
    plot_concepts_vs_distance,
    plot_entropy_heatmaps,
    plot_peak_distance,
    plot_threshold_curve,
)
from kdexplain.report.tables import (
    concept_metrics_markdown,
    control_markdown,
    diagnostics_markdown,
    hypotheses_markdown,
    per_seed_markdown,
    write_tables,
)
from kdexplain.utils.io import atomic_write_text, jsonable, remove_stale_temporaries, write_json
from kdexplain.utils.lock import folder_lock
from kdexplain.utils.render import format_number, format_p, markdown_table
from kdexplain.utils.runinfo import git_revision
from kdexplain.vocabulary import COMPARED_ROLES

__all__ = ["verdict_sentences", "write_report"]

_SETTING_HELP = {
    "concept_threshold": "b: a cell is a concept when H_bar - H_i > b (nats)",
    "baseline_entropy": "H_bar: mean background entropy pooled over images, or per image",
    "select_effective": "the original selection of effective images",
    "keep_effective": "of the effective images, only the first K are analysed (pick_sample)",
    "late_fraction": "selection rule: checkpoints at epoch >= this fraction of training",
    "count_epoch": "checkpoint of hypothesis 1's counts (None: each model's last)",
    "distance": "weight distance d: over optimiser steps, or the per-epoch form",
    "peak_without_concepts": "m^ of an image without foreground concepts",
    "empty_rho": "rho of an image whose foreground never holds a concept (0/0)",
    "alpha": "significance level of the verdicts",
    "ci_level": "coverage of the bootstrap intervals",
    "n_resamples": "bootstrap resamples",
    "n_permutations": "random swaps of the spread test",
    "stats_seed": "seed of the resampling",
}


def verdict_sentences(analysis: ConceptAnalysis) -> list[str]:
    """One Markdown paragraph per hypothesis: the claim, the verdict, the evidence."""
    if analysis.verdicts.empty:
        return ["No hypothesis was tested: " + "; ".join(analysis.notes) + "."]
    level = int(round(analysis.settings.ci_level * 100))
    tests = analysis.tests[analysis.tests["carries_verdict"]]
    out = []
    for v in analysis.verdicts.to_dict("records"):
        rows = tests[tests["hypothesis"] == v["hypothesis"]]
        parts = []
        for r in rows.to_dict("records"):
            if r["test"] == "wilcoxon":
                how = (f"Wilcoxon p = {format_p(r['p_value'])}, rank-biserial r = "
                       f"{r['effect_size']:+.2f}, {r['n_pairs']} images")
            elif r["level"] == "seeds":
                how = (f"sign-flip p = {format_p(r['p_value'])} (smallest possible "
                       f"{format_p(r['min_p'])}), d_z = {format_number(r['effect_size'])}, "
                       f"{r['n_pairs']} seeds")
            else:
                how = (f"permutation p = {format_p(r['p_value'])}, sd ratio S/B = "
                       f"{format_number(r['effect_size'])}, {r['n_pairs']} images")
            parts.append(f"{r['metric']} (expected {r['direction']}): S {format_number(r['S'])} vs B "
                         f"{format_number(r['B'])}, S − B = {format_number(r['diff'])} ({level}% CI "
                         f"{format_number(r['diff_ci_low'])} to {format_number(r['diff_ci_high'])}), {how}: "
                         f"{r['verdict']}")
        out.append(f"**Hypothesis {v['hypothesis']}: {v['claim']}. Verdict: {v['verdict']}** "
                   f"({v['support']}; {v['scope']}). " + "; ".join(parts) + ".")
    return out


def _min_seeds(alpha: float) -> int:
    """The fewest seeds whose smallest exact sign-flip p-value lies below ``alpha``."""
    n = 2
    while min_seed_p_value(n) >= alpha:
        n += 1
    return n


def _limits(analysis: ConceptAnalysis, config: Mapping[str, Any] | None,
            curve: ThresholdCurve | None) -> list[str]:
    """What limits the verdicts: one sentence each on the seeds, the estimator and b."""
    st = analysis.settings
    n = len(analysis.seeds)
    if n > 1:
        floor = min_seed_p_value(n)
        seeds = (f"{n} training runs; the exact sign-flip test cannot give p below "
                 f"{format_p(floor)}")
        seeds += (f", so no verdict can reach alpha = {st.alpha:g} here (it takes "
                  f"{_min_seeds(st.alpha)} seeds): read S − B and its interval."
                  if floor >= st.alpha else f" (alpha = {st.alpha:g}).")
    else:
        seeds = ("one training run: the verdicts compare these two networks over their "
                 "images, not distillation in general; use several seeds for that.")
    preset = _get(config, "analysis", "preset") if config else None
    if preset == "reference":
        estimator = "the reference preset, the optimisation that b was set for."
    elif preset == "paper":
        estimator = ("the `paper` preset: the reference's descent path and kept iterate with "
                     "fewer noise samples per step, so b means what it means for the reference "
                     "(`kdexplain calibrate` checks the agreement; docs/method.md section 6).")
    else:
        estimator = ((f"the `{preset}` preset" if preset else "the entropies as given")
                     + "; b was set for the reference preset, whose within-image entropy "
                     "range is narrower, so the counts are not the paper's (`kdexplain "
                     "calibrate` measures the matching threshold and the verdicts under the "
                     "reference; docs/method.md section 6).")
    threshold = f"b = {st.concept_threshold:g} nats"
    if curve is None:
        threshold += " only (not varied in this report)."
    else:
        lo, hi = min(curve.thresholds), max(curve.thresholds)
        fragile = curve.robustness[curve.robustness["fragile"]]
        threshold += (f"; between b = {lo:g} and {hi:g} " + (
            "no verdict changes." if fragile.empty else
            "the verdict of " + ", ".join(f"hypothesis {h}" for h in fragile["hypothesis"])
            + " changes (see the threshold section)."))
    return ["What limits these verdicts:", "",
            f"- Seeds: {seeds}", f"- Estimator: {estimator}", f"- Threshold: {threshold}", ""]


def _what_was_run(analysis: ConceptAnalysis, config: Mapping[str, Any] | None) -> list[str]:
    lines = []
    summary = _config_line(config)
    if summary:
        lines.append(summary)
    seeds = ", ".join(str(s) for s in analysis.seeds)
    lines.append(f"- Runs (seeds): {len(analysis.seeds)} ({seeds}).")
    for role in analysis.roles:
        first = next(s for s in analysis.seeds if role in analysis.models[s])
        mc = analysis.models[first][role]
        n_used = sum(len(analysis.used_keys[s].get(role, [])) for s in analysis.seeds)
        sources = {id(r): r for r in (analysis.run_of(s, role) for s in analysis.seeds) if r}
        n_all = sum(r.n_images for r in sources.values())  # a shared teacher counts once
        lines.append(f"- {ROLE_LABELS[role]} ({role}): {len(mc.epochs)} checkpoints at epochs "
                     f"{mc.epochs.tolist()}; {n_used} of {n_all} image analyses used; "
                     f"hypothesis 1 read at epoch {mc.count_epoch}.")
    grid = analysis.runs[0].grid
    lines.append(f"- Grid: {grid} x {grid} cells per image.")
    lines.append("")
    lines.append("Analysis settings:")
    lines.append("")
    settings = pd.DataFrame(
        [[f"`{k}`", f"{v:.4g}" if isinstance(v, float) else str(v), _SETTING_HELP.get(k, "")]
         for k, v in analysis.settings.to_dict().items()],
        columns=["setting", "value", "meaning"])
    lines.append(markdown_table(settings))
    if config:
        lines += ["", "<details><summary>Full configuration</summary>", "", "```yaml",
                  yaml.safe_dump(jsonable(config), sort_keys=False).rstrip(), "```", "",
                  "</details>"]
    return lines


def _get(config: Mapping[str, Any], *keys: str) -> Any:
    cur: Any = config
    for k in keys:
        if not isinstance(cur, Mapping) or k not in cur:
            return None
        cur = cur[k]
    return cur


def _config_line(config: Mapping[str, Any] | None) -> str | None:
    """A one-line summary of the usual experiment-config keys (None if none is there)."""
    if not config:
        return None
    parts = []
    for label, keys in (("experiment", ("name",)), ("dataset", ("data", "name")),
                        ("image size", ("data", "image_size")),
                        ("architecture", ("model", "arch")),
                        ("analysed layer", ("model", "layer")),
                        ("student mode", ("student", "mode"))):
        value = _get(config, *keys)
        if value is not None:
            parts.append(f"{label} `{value}`")
    return ("- " + "; ".join(parts) + ".") if parts else None


def _images_section(analysis: ConceptAnalysis) -> list[str]:
    lines = []
    imgs = analysis.images
    for seed in analysis.seeds:
        keys = sorted(set().union(*[set(v) for v in analysis.used_keys[seed].values()]),
                      key=analysis.runs[analysis.seeds.index(seed)].image_keys.index)
        pair = analysis.used_keys[seed]
        main = pair.get("student") or pair.get("baseline") or next(iter(pair.values()))
        lines.append(f"Seed {seed}: {len(main)} images used for the comparison"
                     + (f" ({len(keys)} by some model)" if len(keys) != len(main) else "")
                     + ":")
        lines.append("")
        lines.append(", ".join(f"`{k}`" for k in main))
        lines.append("")
        sub = imgs[imgs["seed"] == seed]
        left = [k for k in dict.fromkeys(sub["image_key"])
                if not sub.loc[sub["image_key"] == k, "used"].all()]
        if left:
            roles = [r for r in analysis.roles if r in set(sub["role"])]
            table = sub.set_index(["image_key", "role"])
            body = []
            for k in left:
                cells = [f"`{k}`"]
                for r in roles:
                    row = table.loc[(k, r)]
                    cells.append("used" if row["used"] else
                                 (row["reason"] if not row["reason"].startswith("not used by")
                                  else "left out with the pair"))
                body.append(cells)
            frame = pd.DataFrame(body, columns=["image", *(ROLE_LABELS[r] for r in roles)])
            lines += ["Not used (why, per model):", "", markdown_table(frame), ""]
    lines.append("Every image's status per model: `images.csv`; per-image numbers: "
                 "`per_image.csv`; counts at every checkpoint: `trajectories.csv`.")
    return lines


def write_report(analysis: ConceptAnalysis, out_dir: str | Path, *,
                 images: np.ndarray | None = None, config: Mapping[str, Any] | None = None,
                 title: str = "kdexplain report", reproduce: Sequence[str] | None = None,
                 heatmap_images: int = 4, heatmap_keys: list[str] | None = None,
                 accuracies: pd.DataFrame | None = None,
                 threshold_curve: ThresholdCurve | None = None) -> dict[str, Path]:
    """Write a complete report folder for a concept analysis.

    Writes, atomically: ``index.md`` (the answer first: the verdicts in words and what
    limits them, the tests that carry them and the seed-level table with the accuracies;
    then the concept metrics, the within-run diagnostics, the figures, the images used, what
    was run with the full configuration, and how to reproduce), ``summary.json``,
    ``concept_metrics.{csv,md,tex}``, ``hypotheses.{csv,md,tex}``, ``per_image.csv``,
    ``trajectories.csv``, ``images.csv`` and ``figures/{entropy_heatmaps,
    concepts_vs_distance,peak_distance}.png``.

    Parameters
    ----------
    analysis : ConceptAnalysis
        From :func:`kdexplain.concepts.analyze_concepts`.
    out_dir : path
        Created if missing; existing files of the same names are replaced.
    images : array (N, 3, H, W), optional
        The first run's images in [0, 1], in the order of its ``image_keys``; shown next to
        the heatmaps.
    config : mapping, optional
        The experiment config (printed as YAML under "What was run").
    title : str
    reproduce : list of str, optional
        Shell commands that reproduce the report (printed as a code block).
    heatmap_images : int
        Number of images in the heatmap figure.
    heatmap_keys : list of str, optional
        Which images to show in the heatmap figure.
    accuracies : DataFrame, optional
        ``seed``, ``role``, ``train_acc``, ``val_acc`` per trained model (the seed-level
        table prints them).
    threshold_curve : ThresholdCurve, optional
        From :func:`kdexplain.concepts.threshold_curve`: adds the section on how the verdicts
        move over the concept threshold b, ``threshold_curve.{csv,md}`` and
        ``figures/threshold_curve.png``.

    Returns
    -------
    dict file name -> Path
    """
    out = Path(out_dir)
    # one writer per report folder; the temporary files of an interrupted report (which
    # users commit) are removed under the lock, as training and the sweep do
    with folder_lock(out, "report", leave_no_file=True):
        remove_stale_temporaries(out)
        return _write_report(analysis, out, images=images, config=config, title=title,
                             reproduce=reproduce, heatmap_images=heatmap_images,
                             heatmap_keys=heatmap_keys, accuracies=accuracies,
                             threshold_curve=threshold_curve)


def _write_report(analysis: ConceptAnalysis, out: Path, *, images: np.ndarray | None,
                  config: Mapping[str, Any] | None, title: str,
                  reproduce: Sequence[str] | None, heatmap_images: int,
                  heatmap_keys: list[str] | None, accuracies: pd.DataFrame | None,
                  threshold_curve: ThresholdCurve | None) -> dict[str, Path]:
    # read before anything is written: a committed report being rewritten must not make
    # the tree look "-dirty" to the revision the report records
    rev = git_revision()
    paths = write_tables(analysis, out, accuracies)
    figures = _figures(analysis, out / "figures", images, heatmap_images, heatmap_keys)
    for p, _ in figures:
        paths[f"figures/{p.name}"] = p
    curve_lines: list[str] = []
    if threshold_curve is not None:
        curve_lines = _threshold_section(threshold_curve, out, paths)

    try:
        version = metadata.version("kdexplain")
    except metadata.PackageNotFoundError:
        version = "unknown"
    lines = [f"# {title}", "",
             "This report asks whether the student S, distilled from the teacher T, encodes "
             "its knowledge differently from the baseline B trained on labels alone "
             "(Cheng et al., CVPR 2020): visual concepts are grid cells whose entropy is "
             f"clearly below the background's (H_bar - H_i > "
             f"{analysis.settings.concept_threshold:g}); definitions in `docs/metrics.md`.",
             "", f"Written by kdexplain {version}" + (f", git {rev}" if rev else "") + ".", "",
             "## Hypotheses: verdicts", ""]
    for s in verdict_sentences(analysis):
        lines += [s, ""]
    lines += _limits(analysis, config, threshold_curve)
    lines += ["Files: `hypotheses.csv`, `hypotheses.md`, `hypotheses.tex`.", "",
              hypotheses_markdown(analysis, diagnostics=False).rstrip(), "",
              "## Seed-level table", "",
              "One row per training run and model (files: `per_seed.csv`, `per_seed.md`).", "",
              per_seed_markdown(analysis, accuracies).rstrip(), ""]
    control = control_markdown(analysis)
    if control:
        lines += ["## The random-teacher control", "", "File: `control_tests.csv`.", "",
                  control.rstrip(), ""]
    lines += ["## Concept metrics", "",
              "Files: `concept_metrics.csv` (every spread and interval), "
              "`concept_metrics.md`, `concept_metrics.tex`.", "",
              concept_metrics_markdown(analysis).rstrip(), ""]
    within = diagnostics_markdown(analysis)
    if within:
        lines += ["## Within-run diagnostics", "", within.rstrip(), ""]
    lines += curve_lines
    lines += _drivers_section(analysis, out, paths)
    lines += ["## Figures", ""]
    for i, (p, caption) in enumerate(figures, 1):
        lines += [f"![figure {i}](figures/{p.name})", "", f"*Figure {i}.* {caption}", ""]
    lines += ["## Images used", ""]
    lines += _images_section(analysis)
    lines += ["", "## What was run", ""]
    lines += _what_was_run(analysis, config)
    lines += _reproduce_section(reproduce)
    if analysis.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in analysis.notes]
    paths["index.md"] = atomic_write_text(out / "index.md", "\n".join(lines).rstrip() + "\n")
    paths["summary.json"] = write_json(out / "summary.json",
                                       jsonable(_summary(analysis, title, version, rev)))
    return paths


def _reproduce_section(reproduce: Sequence[str] | None) -> list[str]:
    lines = ["", "## How to reproduce", ""]
    if reproduce:
        return lines + ["```bash", *reproduce, "```"]
    return lines + ["This report was written from Python with "
                    "`kdexplain.report.write_report`; the per-image numbers it rests on are "
                    "in `per_image.csv` and `trajectories.csv`, the settings above."]


def _summary(analysis: ConceptAnalysis, title: str, version: str, rev: str | None) -> dict:
    """``summary.json``: the settings, the images used, every summary, test and verdict."""
    return {
        "title": title, "kdexplain_version": version, "git_revision": rev,
        "settings": analysis.settings.to_dict(), "seeds": analysis.seeds,
        "used_images": {str(s): v for s, v in analysis.used_keys.items()},
        "summary": analysis.summary.to_dict("records"),
        "tests": analysis.tests.to_dict("records"),
        "verdicts": analysis.verdicts.to_dict("records"),
        "notes": analysis.notes,
    }


def _figures(analysis: ConceptAnalysis, fig_dir: Path, images: np.ndarray | None,
             heatmap_images: int, heatmap_keys: list[str] | None) -> list[tuple[Path, str]]:
    """Draw the report's figures: (path, caption) each."""
    heat = plot_entropy_heatmaps(analysis, fig_dir / "entropy_heatmaps.png", images=images,
                                 n_images=heatmap_images, keys=heatmap_keys)
    figures = [(heat, "Entropy of every cell for T, S and B at the checkpoint of "
                      "hypothesis 1 (first seed), one shared colour scale; the foreground "
                      "is outlined in cyan and concept cells carry a white dot.")]
    if set(COMPARED_ROLES) & set(analysis.roles):
        figures.append((plot_concepts_vs_distance(analysis, fig_dir / "concepts_vs_distance.png"),
                        "Foreground and background concepts per image against the weight "
                        "distance over training (mean, band: ± one standard deviation over "
                        "images)."))
        figures.append((plot_peak_distance(analysis, fig_dir / "peak_distance.png"),
                        "Weight distance at each image's N_fg peak, d(m^), for S and B: "
                        "smaller and less spread means concepts are learned faster and more "
                        "simultaneously (hypothesis 2)."))
    return figures


def _threshold_section(curve: ThresholdCurve, out: Path, paths: dict[str, Path]) -> list[str]:
    """Write the threshold curve's files and return its section of ``index.md``."""
    paths["threshold_curve.csv"] = atomic_write_text(out / "threshold_curve.csv",
                                                     curve.tests.to_csv(index=False))
    wide = curve.verdicts.pivot(index="b", columns="hypothesis", values="verdict")
    wide.columns = [f"hypothesis {h}" for h in wide.columns]
    wide = wide.reset_index()
    wide["b"] = [f"{b:g}" + (" (this report)" if np.isclose(b, curve.own_threshold) else "")
                 for b in wide["b"]]
    table = markdown_table(wide)
    paths["threshold_curve.md"] = atomic_write_text(out / "threshold_curve.md", table + "\n")
    fig = plot_threshold_curve(curve, out / "figures" / "threshold_curve.png")
    paths[f"figures/{fig.name}"] = fig
    fragile = curve.robustness[curve.robustness["fragile"]]
    if fragile.empty:
        words = ("No verdict changes over this range: every hypothesis reads the same at each "
                 "threshold.")
    else:
        words = "Fragile (the verdict changes inside this range): " + "; ".join(
            f"hypothesis {r.hypothesis} ({r.verdicts})" for r in fragile.itertuples()) + "."
    grid = ", ".join(f"{b:g}" for b in curve.thresholds)
    return ["## How the verdicts move over the concept threshold b", "",
            f"Every verdict-carrying test recomputed at b = {grid} nats, everything else as "
            f"above (this report uses b = {curve.own_threshold:g}). {words} Files: "
            "`threshold_curve.csv` (S − B, interval, p and verdict per metric and b), "
            "`threshold_curve.md`.", "", table, "",
            f"![S − B over b](figures/{fig.name})", ""]


def _drivers_section(analysis: ConceptAnalysis, out: Path, paths: dict[str, Path]) -> list[str]:
    """Write ``distance_drivers.csv`` and return the section on what drives D_mean."""
    drivers = distance_drivers(analysis)
    if drivers.empty:
        return []
    paths["distance_drivers.csv"] = atomic_write_text(out / "distance_drivers.csv",
                                                      drivers.to_csv(index=False))
    level = int(round(analysis.settings.ci_level * 100))
    shown = pd.DataFrame({
        "form": drivers["meaning"], "S": drivers["S"].map(format_number),
        "B": drivers["B"].map(format_number),
        "S − B": [f"{format_number(d)} ({format_number(lo)} to {format_number(hi)})"
                  for d, lo, hi in zip(drivers["diff"], drivers["diff_ci_low"],
                                       drivers["diff_ci_high"], strict=True)],
        "p": drivers["p_value"].map(format_p)})
    shown = shown.rename(columns={"S − B": f"S − B ({level}% CI)"})
    return ["## What drives the direction of D_mean", "",
            drivers_sentence(drivers) + " Tests as for the verdicts "
            f"({drivers['level'].iloc[0]} level, {int(drivers['n_pairs'].max())} pairs); file: "
            "`distance_drivers.csv`.", "", markdown_table(shown), ""]
