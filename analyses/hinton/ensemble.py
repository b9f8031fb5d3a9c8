"""Analysis 7: an ensemble of small nets distilled into one net of the same size.

Paper (section 4, speech): ten models trained from different initialisations, averaged,
raised frame accuracy from 58.9% (one model) to 61.1%; a single model of the same size
distilled from the ensemble reached 60.8%, keeping (60.8 - 58.9) / (61.1 - 58.9) = 86% of
the ensemble's gain ("more than 80%" in the paper's words). Here the members are the small
nets of the distillation analysis, trained on labels from different seed streams; the
ensemble's soft targets on the training images teach one more net of that size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.hinton import report as rp
from analyses.hinton.consistent import gap_text, p_text
from analyses.hinton.distillation import short_share
from analyses.hinton.nets import count_errors
from analyses.hinton.seedstats import gap_closed
from analyses.hinton.workspace import Workspace, log
from kdexplain.concepts.stats import seed_paired_test
from kdexplain.utils.render import markdown_table

NAME = "ensemble"
TITLE = "7. An ensemble distilled into one net"
#: Frame accuracy (%) of the paper's speech models: one net, the 10-net ensemble, distilled.
PAPER_ACCURACY = {"single": 58.9, "ensemble": 61.1, "distilled": 60.8}
PAPER_KEPT = (60.8 - 58.9) / (61.1 - 58.9)
#: Criterion fixed before the run: at least this share of the ensemble's gain kept, with a
#: one-sided seed-level sign-flip p (distilled better than a single net) below ALPHA.
KEPT_TARGET, ALPHA = 0.80, 0.05


def run(ws: Workspace) -> dict:
    """Per seed: ``ensemble_size`` small nets on labels, their ensemble, and one small net
    distilled from it (same initialisation as member 0)."""
    cfg, y = ws.cfg, ws.data.y_test
    per_seed = {}
    for i, seed in enumerate(cfg.seeds):
        log(f"ensemble: seed {seed} ({i + 1} of {len(cfg.seeds)})")
        members = [count_errors(ws.student(seed, cfg.student, member=k)["test"], y)
                   for k in range(cfg.ensemble_size)]
        ens = ws.ensemble(seed, cfg.ensemble_size)
        distilled = ws.student(seed, cfg.student, temperature=cfg.ensemble_temperature,
                               soft_weight=cfg.ensemble_soft_weight,
                               ensemble=cfg.ensemble_size)
        per_seed[str(seed)] = {"members": members, "ensemble": count_errors(ens["test"], y),
                               "distilled": count_errors(distilled["test"], y)}
    result = {"name": NAME, "title": TITLE, "n_test": len(y), "n_train": len(ws.data.y_train),
              "per_seed": per_seed, "size": cfg.ensemble_size, "width": cfg.student.hidden,
              "epochs": cfg.student.epochs, "temperature": cfg.ensemble_temperature,
              "soft_weight": cfg.ensemble_soft_weight}
    result["headline"] = headline(result)
    return result


def rates(result: dict) -> dict[str, np.ndarray]:
    """Test error rates per seed ``(S,)``: ``single`` (the mean over the members),
    ``first`` (member 0), ``ensemble`` and ``distilled``."""
    rows, n = list(result["per_seed"].values()), result["n_test"]
    return {"single": np.array([np.mean(r["members"]) for r in rows]) / n,
            "first": np.array([r["members"][0] for r in rows], dtype=float) / n,
            "ensemble": np.array([r["ensemble"] for r in rows], dtype=float) / n,
            "distilled": np.array([r["distilled"] for r in rows], dtype=float) / n}


def seed_level(result: dict) -> dict:
    """The share of the ensemble's gain kept (as :func:`gap_closed`, the ensemble in the
    teacher's place), the test of "more than the target" and the criterion."""
    r = rates(result)
    s, d, e = r["single"], r["distilled"], r["ensemble"]
    kept = gap_closed(s, d, e).as_dict()
    kept["beyond_target_p"] = float(seed_paired_test(s - d, KEPT_TARGET * (s - e),
                                                     alternative="greater").p_value)
    kept["met"] = bool(kept["ratio"]["estimate"] >= KEPT_TARGET - 1e-9
                       and kept["sign_flip_p"] < ALPHA)
    return kept


def _kept_text(kept: dict) -> str:
    return gap_text(kept, than="one net", teacher="the ensemble")


def headline(result: dict) -> list[str]:
    """Errors of one net, the ensemble and the distilled net; the share kept; criterion."""
    r, k = rates(result), seed_level(result)
    acc = PAPER_ACCURACY
    return [f"Test error: one small net {rp.fmt_ms(r['single'], 2, 100, '%')} (mean of "
            f"the {result['size']} members), their ensemble "
            f"{rp.fmt_ms(r['ensemble'], 2, 100, '%')}, one net distilled from it "
            f"{rp.fmt_ms(r['distilled'], 2, 100, '%')} (paper, speech frame accuracy: "
            f"{acc['single']}% / {acc['ensemble']}% / {acc['distilled']}%).",
            f"Share of the ensemble's gain kept by the distilled net: {_kept_text(k)} "
            f"(paper: {PAPER_KEPT:.0%}); criterion (>= {KEPT_TARGET:.0%}, p < {ALPHA:g}) "
            f"{'met' if k['met'] else 'not met'}."]


def summary(result: dict) -> list[dict]:
    """The index's row: the share of the ensemble's gain kept, beside the paper's."""
    r, k = rates(result), seed_level(result)
    gain = (r["single"].mean() - r["ensemble"].mean()) * 100
    return [{"protocol": f"an ensemble of {result['size']} distilled into one net "
                         f"({result.get('meta', {}).get('dataset', '')}): share of the "
                         "ensemble's gain kept",
             "ours": short_share(k["ratio"]) + f", p = {k['sign_flip_p']:.2g}",
             "paper": f"{PAPER_KEPT:.0%} (speech)",
             "separates": f"{result['size']} nets 2x{result['width']} on {result['n_train']} "
                          f"training images, whose ensemble gains {gain:.2f} points of "
                          f"{r['single'].mean() * 100:.2f}% error (paper: 10 speech models, "
                          "2.2 points of frame accuracy, 2000 hours of speech)."}]


def limits_text(result: dict, kept: dict) -> str:
    """When the criterion is not met: what the numbers say limits it ("" when met)."""
    if kept["met"]:
        return ""
    r = {k: v.mean() * 100 for k, v in rates(result).items()}
    s, e, d = r["single"], r["ensemble"], r["distilled"]
    if e >= s:
        why = f"the ensemble ({e:.2f}%) is not better than one net ({s:.2f}%)"
    elif d >= s:
        why = f"the distilled net ({d:.2f}%) is not better than one net ({s:.2f}%)"
    else:
        why = (f"the distilled net keeps {s - d:.2f} of the ensemble's {s - e:.2f} points; "
               f"{KEPT_TARGET:.0%} would need {s - KEPT_TARGET * (s - e):.2f}%")
    spread = float(np.mean([np.std(m["members"], ddof=1) for m in result["per_seed"].values()
                            if len(m["members"]) > 1])) / result["n_test"] * 100
    if s - e < spread:
        why += (f". The ensemble's gain over one net ({s - e:.2f} points) is smaller than the "
                f"spread between its members (standard deviation {spread:.2f} points within a "
                "seed): nets that differ only in initialisation and batch order make nearly "
                "the same errors here, so there is little gain to keep")
    return f"What limits it: {why}."


def render(result: dict, out_dir: str | Path) -> list[Path]:
    """Write ``ensemble.md`` from a :func:`run` result."""
    r, k = rates(result), seed_level(result)
    names = {"single": f"one net (mean over the {result['size']} members)",
             "first": "member 0 (the distilled net's initialisation)",
             "ensemble": f"ensemble of {result['size']}", "distilled": "distilled from it"}
    rows = [[names[key], rp.fmt_ms(v, 2, 100, "%"), rp.scaled_10k(float(v.mean()))]
            for key, v in r.items()]
    per = ", ".join("undefined" if not np.isfinite(x) else f"{x:.0%}" for x in k["per_seed"])
    paper = f"""
Ten models of one architecture trained from
different initialisations; the ensemble's frame accuracy was {PAPER_ACCURACY['ensemble']}%
against {PAPER_ACCURACY['single']}% for one model, and a single model of the same size
distilled from the ensemble reached {PAPER_ACCURACY['distilled']}%: it kept
{PAPER_KEPT:.0%} of the ensemble's gain.
"""
    setup = f"""
Per seed, {result['size']} small nets 2x{result['width']} trained on labels
({result['epochs']} epochs; member 0 is the label-trained net of the distillation analysis,
the others differ only in initialisation and batch order). The ensemble averages their
logits (the normalised geometric mean of their probabilities), which is both its prediction
and its soft targets. One more 2x{result['width']} net, initialised as member 0, is
distilled from the ensemble on the same {result['n_train']} training images at
T = {result['temperature']:g} with soft weight a = {result['soft_weight']:g}. A new
ensemble is drawn for every seed, so the seed is the unit.
"""
    body = f"""
## Test errors

{markdown_table(pd.DataFrame(rows, columns=["net", "test error", "scaled to 10 000"]))}

## The share of the ensemble's gain kept

(err_single - err_distilled) / (err_single - err_ensemble) on the means over
{len(result['per_seed'])} seeds (err_single: the mean error of the members of the seed), with
the percentile interval of the exact bootstrap over seeds:
**{_kept_text(k)}**; paired t p = {p_text(k['t_p'])}; more than {KEPT_TARGET:.0%} kept: one-sided
sign-flip p = {k['beyond_target_p']:.2g}. Per seed: {per}.

Criterion, fixed before the run: at least {KEPT_TARGET:.0%} of the gain kept with a one-sided
sign-flip p < {ALPHA:g} (distilled better than one net): **{'met' if k['met'] else 'not met'}**.
{limits_text(result, k)}
"""
    return rp.render_page(out_dir, result, where="section 4, speech recognition", paper=paper,
                          setup=setup, body=body)
