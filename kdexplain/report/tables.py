"""Tables of a concept analysis as CSV, Markdown and LaTeX (written atomically).

- ``concept_metrics.{csv,md,tex}``: rows T, S, B; columns ``N_fg``, ``N_bg``, ``fg_ratio``,
  ``D_mean``, ``D_std``, ``rho``. The CSV has, per metric, ``<metric>_mean`` and every spread
  (``_sd_images``, ``_sd_seeds``, ``_se``, ``_ci_low``, ``_ci_high``) plus ``D_var``;
  Markdown and LaTeX print "value ± spread" and say which spread it is.
- ``hypotheses.{csv,md,tex}``: one row per tested metric (S against B) with the effect size,
  p-value and verdict, then the verdict per hypothesis.

LaTeX is written by hand (``booktabs`` rules), so no jinja2 is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kdexplain.concepts import ROLE_LABELS, ConceptAnalysis
from kdexplain.utils.io import atomic_write_text
from kdexplain.utils.render import (
    format_interval,
    format_number,
    format_p,
    format_percent,
    format_pm,
    markdown_table,
)
from kdexplain.vocabulary import ALL_ROLES

__all__ = [
    "METRIC_HEADERS",
    "TABLE_METRICS",
    "concept_metrics_latex",
    "concept_metrics_markdown",
    "concept_metrics_table",
    "diagnostics_markdown",
    "format_pm",
    "hypotheses_latex",
    "hypotheses_markdown",
    "hypotheses_table",
    "per_seed_markdown",
    "per_seed_table",
    "write_tables",
]

#: Columns of the printed concept-metrics table (the CSV also has D_var).
TABLE_METRICS: tuple[str, ...] = ("N_fg", "N_bg", "fg_ratio", "D_mean", "D_std", "rho")
_CSV_METRICS: tuple[str, ...] = ("N_fg", "N_bg", "fg_ratio", "D_mean", "D_std", "D_var", "rho")
#: What a reader sees for each metric: words, then the name of the CSV column and the docs.
METRIC_HEADERS = {
    "N_fg": "foreground concepts (N_fg)", "N_bg": "background concepts (N_bg)",
    "fg_ratio": "foreground share (fg_ratio)", "D_mean": "mean peak distance (D_mean)",
    "D_std": "spread of the peak distance (D_std)",
    "D_var": "variance of the peak distance (D_var)", "rho": "stability (rho)",
}
_LATEX_HEADERS = {
    "N_fg": r"$N_{\mathrm{fg}}$", "N_bg": r"$N_{\mathrm{bg}}$",
    "fg_ratio": r"$\lambda$ (fg\_ratio)", "D_mean": r"$D_{\mathrm{mean}}$",
    "D_std": r"$D_{\mathrm{std}}$", "D_var": r"$D_{\mathrm{var}}$", "rho": r"$\rho$",
}


def concept_metrics_table(analysis: ConceptAnalysis) -> pd.DataFrame:
    """The concept-metrics table in wide form (one row per model: T, S, B).

    Columns: ``role``, ``label``, ``n_images`` (used images, all seeds), ``n_seeds``,
    ``count_epoch`` (checkpoint of hypothesis 1; a list when seeds differ), then for each of
    ``N_fg, N_bg, fg_ratio, D_mean, D_std, D_var, rho``: ``<m>_mean``, ``<m>_spread``
    (the "±" of the Markdown table), ``<m>_sd_images``, ``<m>_sd_seeds``, ``<m>_se``,
    ``<m>_ci_low``, ``<m>_ci_high``.
    """
    s = analysis.summary.set_index(["role", "metric"])
    rows = []
    for role in analysis.roles:
        epochs = sorted({int(e) for e in analysis.per_image.loc[
            analysis.per_image["role"] == role, "count_epoch"]})
        row = {"role": role, "label": ROLE_LABELS[role],
               "n_images": int(s.loc[(role, "N_fg"), "n_images"]),
               "n_seeds": int(s.loc[(role, "N_fg"), "n_seeds"]),
               "count_epoch": epochs[0] if len(epochs) == 1 else str(epochs)}
        for m in _CSV_METRICS:
            r = s.loc[(role, m)]
            row.update({f"{m}_mean": r["value"], f"{m}_spread": r["spread"],
                        f"{m}_sd_images": r["sd_images"], f"{m}_sd_seeds": r["sd_seeds"],
                        f"{m}_se": r["se"], f"{m}_ci_low": r["ci_low"],
                        f"{m}_ci_high": r["ci_high"], f"{m}_epoch0": r["epoch0"],
                        f"{m}_change_from_epoch0": r["change_from_epoch0"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _spread_note(analysis: ConceptAnalysis) -> str:
    n_seeds = len(analysis.seeds)
    level = int(round(analysis.settings.ci_level * 100))
    if n_seeds > 1:
        spread = f"± is the standard deviation over the {n_seeds} seeds of the per-seed value"
        summ = analysis.summary
        t_seeds = summ.loc[summ["role"] == "teacher", "n_seeds"] if "role" in summ else []
        if len(t_seeds) and int(t_seeds.max()) == 1:
            spread += ("; T is one training run, shared by every seed, so its ± and interval "
                       "are over its images only: a re-run of the teacher's training can land "
                       "outside them")
    else:
        spread = ("± is the standard deviation over images (ddof 1); for D_std, itself a "
                  "spread over images, it is the bootstrap standard error")
    return (f"Value: mean over images (D_std: standard deviation over images, ddof 0, of the "
            f"weight distance d(m^) at each image's N_fg peak; its square D_var, the original "
            f"code's number, is in the CSV). {spread}. {level}% bootstrap intervals are in the "
            "CSV and in the interval table.")


def concept_metrics_markdown(analysis: ConceptAnalysis) -> str:
    """Markdown: "value ± spread" per model and metric, the bootstrap intervals, and what
    training changed from epoch 0."""
    wide = concept_metrics_table(analysis).to_dict("records")
    level = int(round(analysis.settings.ci_level * 100))
    heads = [METRIC_HEADERS[m] for m in TABLE_METRICS]
    values = pd.DataFrame(
        [[f"{r['label']} ({r['role']})", str(r["n_images"])]
         + [format_pm(r[f"{m}_mean"], r[f"{m}_spread"]) for m in TABLE_METRICS] for r in wide],
        columns=["model", "images", *heads])
    intervals = pd.DataFrame(
        [[r["label"]] + [format_interval(r[f"{m}_ci_low"], r[f"{m}_ci_high"], r[f"{m}_mean"],
                                         r[f"{m}_spread"]) for m in TABLE_METRICS]
         for r in wide], columns=["model", *heads])
    counts = ("N_fg", "N_bg", "fg_ratio")
    summ = analysis.summary.set_index(["role", "metric"])
    change_rows = []
    for r in wide:
        cells = [r["label"]]
        for m in counts:
            row = summ.loc[(r["role"], m)]
            moved = row.get("moved")
            mark = "" if moved is None or pd.isna(moved) else (
                " (moved)" if moved else " (within seed spread)")
            cells += [format_number(row["epoch0"]),
                      f"{format_number(row['change_from_epoch0'])} "
                      f"[{format_number(row['change_ci_low'])}, "
                      f"{format_number(row['change_ci_high'])}]{mark}"]
        change_rows.append(cells)
    change_heads = ["model"] + [f"{METRIC_HEADERS[m]} {when}" for m in counts
                                for when in ("at epoch 0", "change")]
    changes = pd.DataFrame(change_rows, columns=change_heads)
    lines = [markdown_table(values, "lr" + "r" * len(heads)),
             "", f"{level}% bootstrap intervals:", "",
             markdown_table(intervals, "l" + "r" * len(heads)),
             "", "What training changed (hypothesis 1's metrics at epoch 0, before training, "
             "where S and B share their weights; then the change to the count checkpoint "
             f"with its {level}% hierarchical bootstrap interval):", "",
             markdown_table(changes, "l" + "r" * (2 * len(counts))), "",
             "\"moved\": the change from epoch 0 is larger than the standard deviation over "
             "seeds of the metric at the count checkpoint; \"within seed spread\": training "
             "moved the metric less than the seeds differ (no mark: one seed).", "",
             moved_sentence(analysis)]
    return "\n".join(lines) + "\n\n" + _spread_note(analysis) + "\n"


def moved_sentence(analysis: ConceptAnalysis) -> str:
    """One sentence per model: which of hypothesis 1's metrics training moved beyond the
    spread over seeds (epoch 0 against the count checkpoint), with the numbers."""
    summ = analysis.summary
    if "moved" not in summ:
        return ""
    parts = []
    for role in analysis.roles:
        rows = summ[(summ["role"] == role) & summ["metric"].isin(("N_fg", "N_bg", "fg_ratio"))]
        if rows["moved"].isna().all():
            continue
        said = [f"{r.metric} {format_number(r.epoch0)} -> {format_number(r.value)} "
                f"(sd over seeds {format_number(r.sd_seeds)}: "
                f"{'moved' if r.moved else 'not beyond it'})" for r in rows.itertuples()]
        parts.append(f"{ROLE_LABELS[role]}: " + "; ".join(said))
    if not parts:
        return ""
    return "Did training move hypothesis 1's metrics beyond the spread over seeds? " + \
        ". ".join(parts) + "."


def _tex_escape(text: str) -> str:
    out = str(text)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                 ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\~{}"),
                 ("^", r"\^{}")):
        out = out.replace(a, b)
    return out


def concept_metrics_latex(analysis: ConceptAnalysis) -> str:
    """A ``table`` environment (booktabs) with "value $\\pm$ spread" cells."""
    wide = concept_metrics_table(analysis)
    lines = [
        "% kdexplain concept metrics; needs \\usepackage{booktabs}",
        "\\begin{table}[t]", "\\centering",
        "\\begin{tabular}{l" + "r" * len(TABLE_METRICS) + "}", "\\toprule",
        "role & " + " & ".join(_LATEX_HEADERS[m] for m in TABLE_METRICS) + " \\\\",
        "\\midrule",
    ]
    for r in wide.to_dict("records"):
        cells = [format_pm(r[f"{m}_mean"], r[f"{m}_spread"], pm=" $\\pm$ ")
                 for m in TABLE_METRICS]
        lines.append(f"{r['label']} ({r['role']}) & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}",
              "\\caption{" + _tex_escape(_spread_note(analysis)) + "}",
              "\\label{tab:concept-metrics}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def hypotheses_table(analysis: ConceptAnalysis) -> pd.DataFrame:
    """One row per tested metric and level: ``hypothesis``, ``metric``, ``direction``
    (hypothesised, S vs B), ``level`` (``seeds``: paired by seed, ``n_pairs`` = seeds;
    ``images``: one run's images, ``seed`` says which), ``seed``, ``carries_verdict``, ``S``,
    ``B``, ``diff`` (S - B) with ``diff_ci_low``/``diff_ci_high``, ``median_diff``,
    ``effect_size`` with ``effect_size_kind``, ``test``, ``statistic``, ``n_pairs``,
    ``min_p`` (smallest p the exact test can give), ``p_value``, ``p_holm`` (Holm within a
    family), ``verdict``."""
    return analysis.tests.copy()


def _effect(r: dict) -> str:
    kind = r["effect_size_kind"]
    if kind.startswith("matched"):
        return f"r = {r['effect_size']:+.2f}"
    if kind.startswith("Cohen"):
        return f"d_z = {format_number(r['effect_size'], 2)}"
    return f"sd ratio {format_number(r['effect_size'], 3)}"


def _rule_note(analysis: ConceptAnalysis) -> str:
    a = analysis.settings.alpha
    n_seeds = len(analysis.seeds)
    level = int(round(analysis.settings.ci_level * 100))
    if n_seeds > 1:
        how = (f"The verdicts come from {n_seeds} training runs: per seed, the metric's value "
               f"over that run's images for S and for B, then an exact sign-flip permutation "
               f"test of S against B paired by seed (two-sided; smallest possible p "
               f"{2.0 ** (1 - n_seeds):.3g} at {n_seeds} seeds); S - B with a {level}% "
               f"hierarchical bootstrap interval (seeds resampled, then images within each "
               f"seed); effect size d_z = mean / sd of the per-seed differences. The "
               f"image-level rows (Wilcoxon signed-rank for means, paired permutation for "
               f"D_std, per seed) are within-run diagnostics: they describe two particular "
               f"networks and carry no verdict.")
    else:
        how = (f"One training run: paired over its images, Wilcoxon signed-rank test "
               f"(two-sided) for means, paired permutation test for D_std. These verdicts "
               f"cover those two networks only (S and B of seed {analysis.seeds[0]}), not "
               f"distillation in general: run several seeds for that.")
    return (f"{how} A metric holds when p < {a} in the hypothesised direction, does not hold "
            f"when p < {a} the other way, else it is inconclusive. A hypothesis holds when all "
            f"its metrics hold; it does not hold when none holds and at least one is "
            f"significant the other way after a Holm correction over its metrics; otherwise it "
            f"is inconclusive. p (Holm) corrects over the rows of one family (the rows that "
            f"carry the verdicts; each seed's diagnostics).")


def _test_rows(rows: list[dict], level: int, with_seed: bool) -> str:
    heads = ["hypothesis", "metric", "hypothesised", "test", "pairs", "S", "B",
             f"S − B [{level}% CI]", "effect size", "p", "p (Holm)", "verdict"]
    body = []
    for r in rows:
        diff = (f"{format_number(r['diff'])} [{format_number(r['diff_ci_low'])}, "
                f"{format_number(r['diff_ci_high'])}]")
        body.append(([str(r["seed"])] if with_seed else [])
                    + [str(r["hypothesis"]), METRIC_HEADERS[r["metric"]], r["direction"],
                       r["test"], str(r["n_pairs"]), format_number(r["S"]),
                       format_number(r["B"]), diff, _effect(r), format_p(r["p_value"]),
                       format_p(r["p_holm"]), f"**{r['verdict']}**"])
    frame = pd.DataFrame(body, columns=(["seed"] if with_seed else []) + heads)
    return markdown_table(frame, ("r" if with_seed else "") + "rlll" + "r" * 7 + "l")


def hypotheses_markdown(analysis: ConceptAnalysis, diagnostics: bool = True) -> str:
    """Markdown: the tests that carry the verdicts, one line per hypothesis with its
    verdict, then (with several seeds, unless ``diagnostics`` is False) the within-run
    diagnostics of each seed (:func:`diagnostics_markdown`)."""
    if analysis.tests.empty:
        return "No hypothesis was tested: " + "; ".join(analysis.notes) + "\n"
    level = int(round(analysis.settings.ci_level * 100))
    tests = analysis.tests
    carrying = tests[tests["carries_verdict"]].to_dict("records")
    several = len(analysis.seeds) > 1
    lines = ["Tests that carry the verdicts"
             + (f" (paired by seed, {len(analysis.seeds)} seeds):" if several else
                f" (one run, seed {analysis.seeds[0]}: about these two networks only):"), ""]
    lines.append(_test_rows(carrying, level, with_seed=not several))
    verdicts = pd.DataFrame(
        [[str(v["hypothesis"]), v["claim"], f"**{v['verdict']}**", v["support"], v["scope"]]
         for v in analysis.verdicts.to_dict("records")],
        columns=["hypothesis", "claim", "verdict", "support", "scope"])
    lines += ["", markdown_table(verdicts, "rllll")]
    within = diagnostics_markdown(analysis) if diagnostics else ""
    if within:
        lines += ["", within.rstrip()]
    return "\n".join(lines).rstrip() + "\n\n" + _rule_note(analysis) + "\n"


def diagnostics_markdown(analysis: ConceptAnalysis) -> str:
    """Markdown: the within-run (image-level) tests of each seed; empty with one seed, where
    the image-level tests carry the verdicts."""
    if analysis.tests.empty:
        return ""
    level = int(round(analysis.settings.ci_level * 100))
    tests = analysis.tests
    rows = tests[~tests["carries_verdict"]].sort_values(
        ["seed", "hypothesis"], kind="stable").to_dict("records")
    if not rows:
        return ""
    return ("Within-run diagnostics (image level, one run at a time; no verdict rests on "
            "them):\n\n" + _test_rows(rows, level, with_seed=True) + "\n")


def hypotheses_latex(analysis: ConceptAnalysis) -> str:
    """A ``table`` environment (booktabs) of the metric tests and verdicts."""
    lines = ["% kdexplain hypothesis tests; needs \\usepackage{booktabs}",
             "\\begin{table}[t]", "\\centering", "\\begin{tabular}{rlllrrrrrl}", "\\toprule",
             "H & metric & hyp. & test & S & B & effect size & $p$ & $p_{\\mathrm{Holm}}$ & "
             "verdict \\\\", "\\midrule"]
    if analysis.tests.empty:
        lines.append("\\multicolumn{10}{l}{no test: " + _tex_escape("; ".join(analysis.notes))
                     + "} \\\\")
    for r in analysis.tests[analysis.tests["carries_verdict"]].to_dict("records") \
            if not analysis.tests.empty else []:
        test = {"wilcoxon": "Wilcoxon", "sign-flip over seeds": "sign-flip (seeds)"}.get(
            r["test"], "permutation")
        lines.append(" & ".join([
            str(r["hypothesis"]), _LATEX_HEADERS[r["metric"]],
            r["direction"].replace(">", "$>$").replace("<", "$<$"), test, format_number(r["S"]),
            format_number(r["B"]), _tex_escape(_effect(r)), format_p(r["p_value"]), format_p(r["p_holm"]),
            r["verdict"]]) + " \\\\")
    if not analysis.verdicts.empty:
        lines.append("\\midrule")
        for v in analysis.verdicts.to_dict("records"):
            lines.append(f"\\multicolumn{{10}}{{l}}{{Hypothesis {v['hypothesis']}: "
                         f"{v['verdict']} ({_tex_escape(v['support'])})}} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}",
              "\\caption{" + _tex_escape(_rule_note(analysis)) + "}",
              "\\label{tab:hypotheses}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def per_seed_table(analysis: ConceptAnalysis, accuracies: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """The seed-level table: one row per (seed, role), the unit the verdicts rest on.

    Columns: ``seed``, ``role``, ``label``, ``n_images``, then the per-seed value of each of
    ``N_fg, N_bg, fg_ratio, D_mean, D_std, D_var, rho`` (a mean over that run's used images;
    ``D_std``/``D_var`` the spread over them, ddof 0), then, when ``accuracies`` is given
    (columns ``seed``, ``role``, ``train_acc``, ``val_acc``), the model's final train and
    validation accuracy.
    """
    from kdexplain.concepts import METRICS

    rows = []
    for (seed, role), sub in analysis.per_image.groupby(["seed", "role"], sort=True):
        row = {"seed": int(seed), "role": role, "label": ROLE_LABELS[role],
               "n_images": int(len(sub))}
        for metric in _CSV_METRICS:
            source, statistic = METRICS[metric]
            x = sub[source].to_numpy(dtype=np.float64)
            x = x[np.isfinite(x)]
            fn = {"mean": np.mean, "std": np.std, "var": np.var}[statistic]
            row[metric] = float(fn(x)) if x.size else float("nan")
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {r: i for i, r in enumerate(ALL_ROLES)}
    table = table.sort_values(["seed", "role"], key=lambda c: c.map(order) if c.name == "role"
                              else c, ignore_index=True)
    if accuracies is not None and not accuracies.empty:
        extra = [c for c in _FIDELITY if c in accuracies.columns]
        acc = accuracies[["seed", "role", "train_acc", "val_acc", *extra]]
        table = table.merge(acc, on=["seed", "role"], how="left")
    return table


#: Fidelity to the teacher on the validation set (kdexplain.train.fidelity), when recorded.
_FIDELITY = ("agreement", "kl_teacher", "ece")


def gap_recovered(table: pd.DataFrame) -> dict[str, float]:
    """The share of the teacher-baseline gap in mean validation accuracy that each student
    recovers: ``(acc(X) - acc(B)) / (acc(T) - acc(B))`` for X in S and the control; NaN
    without the accuracies or without a gap."""
    if "val_acc" not in table.columns:
        return {}
    mean = table.groupby("role")["val_acc"].mean()
    if not {"teacher", "baseline"} <= set(mean.index):
        return {}
    gap = mean["teacher"] - mean["baseline"]
    return {role: float((mean[role] - mean["baseline"]) / gap) if gap != 0 else float("nan")
            for role in ("student", "control") if role in mean.index}


def per_seed_markdown(analysis: ConceptAnalysis, accuracies: pd.DataFrame | None = None) -> str:
    """Markdown of :func:`per_seed_table` (accuracies in %)."""
    table = per_seed_table(analysis, accuracies)
    acc = "val_acc" in table.columns
    fid = [c for c in _FIDELITY if c in table.columns]
    body = []
    for r in table.to_dict("records"):
        cells = [str(r["seed"]), f"{r['label']} ({r['role']})", str(r["n_images"])]
        cells += [format_number(r[m], 4) for m in TABLE_METRICS]
        if acc:
            cells += [format_percent(r[k]) for k in ("train_acc", "val_acc")]
        cells += [format_percent(r[k]) if k == "agreement" else format_number(r[k], 3)
                  for k in fid]
        body.append(cells)
    heads = ["seed", "model", "images", *(METRIC_HEADERS[m] for m in TABLE_METRICS)]
    heads += ["train accuracy", "validation accuracy"] if acc else []
    heads += [{"agreement": "agreement with T", "kl_teacher": "KL(T || model)",
               "ece": "ECE"}[k] for k in fid]
    lines = [markdown_table(pd.DataFrame(body, columns=heads),
                            "rlr" + "r" * (len(TABLE_METRICS) + 2 * acc + len(fid)))]
    note = ("Per-seed values: a mean over that run's used images (D_std: their spread). "
            "A shared teacher appears once, under its own seed.")
    if acc:
        note += (" Accuracies: the model's last epoch; train accuracy is the running accuracy "
                 "of that epoch in training mode (dropout on), validation in evaluation mode.")
        shares = gap_recovered(table)
        if shares:
            note += (" Share of the gap T - B in mean validation accuracy recovered: " + ", ".join(
                f"{ROLE_LABELS[r]} {format_percent(v)}" for r, v in shares.items()) + ".")
    if fid:
        note += (" Fidelity on the validation set (Stanton et al., 2021): top-1 agreement with "
                 "the teacher, mean KL(T || model) of the predictive distributions (nats) and "
                 "the expected calibration error (15 equal-width confidence bins).")
    return "\n".join(lines) + "\n\n" + note + "\n"


def control_markdown(analysis: ConceptAnalysis) -> str:
    """The random-teacher control's tests (C against B, S against C, paired by seed) and the
    sentence that reads them; empty without a control."""
    t = analysis.control_tests
    if t is None or t.empty:
        return ""
    body = [[r["comparison"], str(r["hypothesis"]), METRIC_HEADERS.get(r["metric"], r["metric"]),
             r["direction"], format_number(r["first"]), format_number(r["second"]),
             f"{format_number(r['diff'])} [{format_number(r['diff_ci_low'])}, "
             f"{format_number(r['diff_ci_high'])}]", f"{r['p_value']:.3g}",
             f"{r['p_holm']:.3g}", r["verdict"]] for r in t.to_dict("records")]
    heads = ["comparison", "hypothesis", "metric", "direction", "first", "second",
             "difference [interval]", "p", "p (Holm)", "verdict"]
    st = analysis.tests
    sb = st[st["carries_verdict"] & (st["level"] == "seeds")] if not st.empty else st
    cb = t[t["comparison"] == "C vs B"].set_index("metric")
    alpha = analysis.settings.alpha
    shared = [m for m in sb["metric"] if m in cb.index
              and float(sb.set_index("metric").loc[m, "p_value"]) < alpha
              and float(cb.loc[m, "p_value"]) < alpha
              and np.sign(float(sb.set_index("metric").loc[m, "diff"]))
              == np.sign(float(cb.loc[m, "diff"]))] if not sb.empty else []
    significant = [] if sb.empty else sb.loc[sb["p_value"] < alpha, "metric"].tolist()
    if shared:
        verdict = (f"S's differences from B in {', '.join(shared)} also appear for the control "
                   "C, distilled from an untrained teacher: they do not come from the teacher's "
                   "knowledge.")
    elif significant:
        verdict = (f"S differs from B in {', '.join(significant)} (p < {alpha:g} by seed); C "
                   "does not repeat these differences in the same direction, so they are not "
                   "explained by distillation from an untrained network.")
    else:
        verdict = (f"No difference of S from B reaches p < {alpha:g} by seed, so there is none "
                   "for the control to explain; the table shows where C itself stands.")
    return ("The random-teacher control C is distilled by the student's procedure from the "
            "teacher's architecture at its initial weights. If S's differences from B also "
            "appear for C, they do not come from the teacher's knowledge. " + verdict + "\n\n"
            + markdown_table(pd.DataFrame(body, columns=heads), "lrllrrrrrl") + "\n")


def write_tables(analysis: ConceptAnalysis, out_dir: str | Path,
                 accuracies: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``concept_metrics.{csv,md,tex}``, ``hypotheses.{csv,md,tex}``,
    ``per_seed.{csv,md}``, ``per_image.csv``, ``trajectories.csv`` and ``images.csv`` into
    ``out_dir``.

    Returns the paths by file name.
    """
    out = Path(out_dir)
    files = {
        "per_seed.csv": per_seed_table(analysis, accuracies).to_csv(index=False),
        "per_seed.md": per_seed_markdown(analysis, accuracies),
        "concept_metrics.csv": concept_metrics_table(analysis).to_csv(index=False),
        "concept_metrics.md": concept_metrics_markdown(analysis),
        "concept_metrics.tex": concept_metrics_latex(analysis),
        "hypotheses.csv": hypotheses_table(analysis).to_csv(index=False),
        "hypotheses.md": hypotheses_markdown(analysis),
        "hypotheses.tex": hypotheses_latex(analysis),
        "per_image.csv": analysis.per_image.to_csv(index=False),
        "trajectories.csv": analysis.trajectories.to_csv(index=False),
        "images.csv": analysis.images.to_csv(index=False),
    }
    if analysis.control_tests is not None and not analysis.control_tests.empty:
        files["control_tests.csv"] = analysis.control_tests.to_csv(index=False)
    return {name: atomic_write_text(out / name, text) for name, text in files.items()}
