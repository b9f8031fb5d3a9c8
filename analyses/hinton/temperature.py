"""Analysis 1: what the temperature does to a softmax (Hinton et al., section 2).

``q_i = exp(z_i / T) / sum_j exp(z_j / T)``: T = 1 is the ordinary softmax; a higher T
gives a softer distribution over classes, which exposes the small probabilities a
trained net assigns to wrong classes (the "dark knowledge"). Shown on hand-picked logits,
on one real test digit, and as the mean entropy of the teacher's soft targets on the test
set as T grows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps

from analyses.hinton import report as rp
from analyses.hinton.workspace import Workspace
from kdexplain.train.losses import softmax_t
from kdexplain.utils.render import format_number, markdown_table

NAME = "temperature"
TITLE = "1. Temperature: softening the softmax"

#: Logits whose T = 1 softmax is exactly (1, 2, 4) / 7 and T = 2 softmax (1, sqrt 2, 2) / (3 + sqrt 2).
TOY_LOGITS = (0.0, math.log(2.0), math.log(4.0))


def softmax_table(logits: torch.Tensor | Sequence[float],
                  temperatures: Sequence[float]) -> torch.Tensor:
    """Temperature softmax of one logit vector at several temperatures.

    Parameters
    ----------
    logits : Tensor (C,) or sequence of float
        Computed in float64 (pass a sequence, or a float64 tensor, for exact golden values).
    temperatures : sequence of float (K values, each > 0)

    Returns
    -------
    Tensor (K, C)
        Row k is ``softmax_t(logits, temperatures[k])``.
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    return torch.stack([softmax_t(logits, float(t)) for t in temperatures])


def soft_target_entropy(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Entropy (nats) of each row's temperature softmax.

    Parameters
    ----------
    logits : Tensor (N, C)
    temperature : float

    Returns
    -------
    Tensor (N,)
        ``-sum_i q_i log q_i``; 0 for a one-hot, ``log C`` for the uniform distribution.
    """
    log_q = torch.log_softmax(logits.double() / float(temperature), dim=-1)
    return -(log_q.exp() * log_q).sum(dim=-1)


def run(ws: Workspace) -> dict:
    """Compute the example tables and the entropy curve for every seed's teacher."""
    cfg, data = ws.cfg, ws.data
    temps = list(cfg.example_temperatures)
    toy = softmax_table(TOY_LOGITS, temps)

    # The real example: the first test image of class 2 (a digit "2" on MNIST), as seen by
    # the first seed's teacher; the paper's example is a 2 that looks a bit like a 3 and a 7.
    example_class = 2 if data.num_classes > 2 else 0
    example_index = int(torch.nonzero(data.y_test == example_class)[0])
    t0 = ws.teacher(cfg.seeds[0])["test"]
    ex_logits = t0[example_index]
    ex_table = softmax_table(ex_logits, temps)

    ent_temps = list(cfg.entropy_temperatures)
    per_seed = {}
    for seed in cfg.seeds:
        test_logits = ws.teacher(seed)["test"]
        q1 = softmax_t(test_logits.double(), 1.0)
        per_seed[str(seed)] = {
            "mean_entropy": [float(soft_target_entropy(test_logits, t).mean()) for t in ent_temps],
            "mean_max_prob": [float(softmax_t(test_logits.double(), t).max(dim=1).values.mean())
                              for t in ent_temps],
            # all but the largest probability of each row: the wrong-class probabilities
            "median_wrong_prob_t1": float(q1.sort(dim=1).values[:, :-1].median()),
            "test_error_rate": float((test_logits.argmax(1) != data.y_test).double().mean()),
        }
    result = {
        "name": NAME, "title": TITLE,
        "temperatures": temps, "toy_logits": list(TOY_LOGITS), "toy_probs": toy.tolist(),
        "example": {"index_in_test_split": example_index, "label": example_class,
                    "class_names": list(data.class_names), "logits": ex_logits.tolist(),
                    "probs": ex_table.tolist(), "image": data.x_test[example_index].tolist(),
                    "image_shape": list(data.image_shape), "seed": cfg.seeds[0]},
        "entropy_temperatures": ent_temps, "per_seed": per_seed,
        "log_num_classes": math.log(data.num_classes),
    }
    result["headline"] = headline(result)
    return result


def headline(result: dict) -> list[str]:
    """The one-line findings for the index (recomputed whenever the page is rendered)."""
    temps, per_seed = result["entropy_temperatures"], result["per_seed"]
    num_classes = len(result["example"]["class_names"])
    ents = np.array([s["mean_entropy"] for s in per_seed.values()])
    i1 = temps.index(1.0) if 1.0 in temps else 0
    i20 = temps.index(20.0) if 20.0 in temps else len(temps) - 1
    return [f"Mean entropy of the teacher's soft targets on the test set: "
            f"{rp.fmt_ms(ents[:, i1], 3)} nats at T = {temps[i1]:g}, "
            f"{rp.fmt_ms(ents[:, i20], 3)} at T = {temps[i20]:g} "
            f"(uniform: ln {num_classes} = {math.log(num_classes):.3f})."]


def render(result: dict, out_dir: str | Path) -> list[Path]:
    """Write ``temperature.md`` and its plots from a :func:`run` result."""
    out_dir = Path(out_dir)
    temps = result["temperatures"]
    ex = result["example"]
    names = ex["class_names"]
    toy = np.array(result["toy_probs"])
    ex_probs = np.array(ex["probs"])
    ent_t = result["entropy_temperatures"]
    seeds = list(result["per_seed"])
    ents = np.array([result["per_seed"][s]["mean_entropy"] for s in seeds])
    maxp = np.array([result["per_seed"][s]["mean_max_prob"] for s in seeds])
    paths = [_softmax_figure(result, out_dir), _entropy_figure(result, out_dir, ents, maxp)]

    # -- tables
    toy_rows = [[f"{t:g}"] + [format_number(p, 4) for p in row] for t, row in zip(temps, toy, strict=True)]
    ex_rows = [[f"{t:g}"] + [format_number(p, 3) for p in row] for t, row in zip(temps, ex_probs, strict=True)]
    ent_rows = []
    for j, t in enumerate(ent_t):
        ent_rows.append([f"{t:g}", rp.fmt_ms(ents[:, j], 3),
                         f"{float(np.exp(ents[:, j]).mean()):.2f}", rp.fmt_ms(maxp[:, j], 3)])
    p1 = dict(zip(temps, ex_probs.tolist(), strict=True)).get(1.0)
    lab = ex["label"]
    paper_vs = ""
    if p1 is not None and len(names) == 10 and lab == 2:
        paper_vs = markdown_table(pd.DataFrame([["q('3')", "1e-6 (\"one version of a 2\")", format_number(p1[3], 3)],
             ["q('7')", "1e-9", format_number(p1[7], 3)],
             ["q('2')", "~1", format_number(p1[2], 4)]], columns=["quantity (a test '2' at T = 1)", "paper", "ours"]))
    med = [result["per_seed"][s]["median_wrong_prob_t1"] for s in seeds]
    err = [result["per_seed"][s]["test_error_rate"] for s in seeds]

    paper = """
"Using a higher value for T produces a softer probability distribution over
classes." At T = 1 a trained net gives wrong classes tiny probabilities (a 2 might get
1e-6 of being a 3 and 1e-9 of being a 7); these ratios carry much information about
similarity, but have very little influence on a cross-entropy at T = 1. Raising T
exposes them.
"""
    body = f"""
## Hand-picked logits

Logits (0, ln 2, ln 4): at T = 1 the softmax is exactly (1, 2, 4)/7 = (0.1429, 0.2857,
0.5714); at T = 2 it is (1, sqrt 2, 2)/(3 + sqrt 2) = (0.2265, 0.3204, 0.4531); as T grows
it tends to the uniform 1/3 (these values are unit-tested).

{markdown_table(pd.DataFrame(toy_rows, columns=["T", "q(z = 0)", "q(z = ln 2)", "q(z = ln 4)"]))}

## A real digit

The first test image of class {names[lab]!r} (#{ex['index_in_test_split']} of the test
split), seed {ex['seed']}'s teacher:

{markdown_table(pd.DataFrame(ex_rows, columns=["T"] + list(names)))}

{paper_vs}

Our teachers (test error {rp.fmt_ms(err, 2, 100, '%')}) learn from far fewer images than
the paper's 60 000. At T = 1 the median probability they give a wrong class on the test set
is {float(np.mean(med)):.1e} (per seed: {', '.join(f'{m:.1e}' for m in med)}){
'' if float(np.mean(med)) >= 1e-3 else ': the same regime of tiny wrong-class probabilities the paper describes'}.

![softmax over T](temperature_softmax.png)

## Entropy of the teacher's soft targets as T grows

Mean over the test images of the entropy of q_T(teacher) (nats), its exponential (the
"effective number of classes"), and the mean largest probability:

{markdown_table(pd.DataFrame(ent_rows, columns=["T", "mean entropy (nats)", "exp(entropy)", "mean max prob."]))}

![entropy over T](temperature_entropy.png)

**Reading.** {_reading(ent_t, ents, maxp, result['log_num_classes'], len(names))}
"""
    return rp.render_page(out_dir, result, paper=paper, body=body, figures=paths)


def _softmax_figure(result: dict, out_dir: Path) -> Path:
    """``temperature_softmax.png``: q_i over T for the toy logits and the real digit."""
    temps = result["temperatures"]
    ex = result["example"]
    names = ex["class_names"]
    toy = np.array(result["toy_probs"])
    # -- figure 1: probabilities vs T (toy and real example) + the example digit
    fig, axes = rp.figure(13, 3.8, 3, gridspec_kw={"width_ratios": [1, 1.4, 0.55]})
    fine_t = np.geomspace(min(temps), max(temps), 100)
    toy_fine = softmax_table(result["toy_logits"], list(fine_t)).numpy()
    for i in range(toy.shape[1]):
        axes[0].plot(fine_t, toy_fine[:, i], label=f"z = ln {2 ** i}" if i else "z = 0")
    axes[0].set(xscale="log", xlabel="temperature T", ylabel="q_i",
                title="logits (0, ln 2, ln 4)")
    axes[0].legend(fontsize=8)
    ex_fine = softmax_table(ex["logits"], list(fine_t)).numpy()
    cmap = colormaps["tab10"]
    for i, n in enumerate(names):
        axes[1].plot(fine_t, ex_fine[:, i], color=cmap(i % 10), lw=2.2 if i == ex["label"] else 1.2,
                     label=n)
    axes[1].set(xscale="log", yscale="log", xlabel="temperature T", ylabel="q_i (log scale)",
                title=f"teacher on test image #{ex['index_in_test_split']} (label {names[ex['label']]})")
    axes[1].axhline(1 / len(names), color="grey", ls=":", lw=1)
    axes[1].legend(fontsize=7, ncol=2, title="class", title_fontsize=7)
    h, w = ex["image_shape"]
    axes[2].imshow(np.array(ex["image"]).reshape(h, w), cmap="gray")
    axes[2].set(title="the image", xticks=[], yticks=[])
    return rp.save_figure(fig, out_dir / "temperature_softmax.png")


def _entropy_figure(result: dict, out_dir: Path, ents: np.ndarray, maxp: np.ndarray) -> Path:
    """``temperature_entropy.png``: mean entropy and largest probability over T."""
    ent_t = result["entropy_temperatures"]
    names = result["example"]["class_names"]
    # -- figure 2: entropy of the soft targets vs T
    fig, ax = rp.figure(10, 3.6, 2)
    rp.errorbar_line(ax[0], ent_t, ents, "teacher soft targets (test set)")
    ax[0].axhline(result["log_num_classes"], color="grey", ls="--", lw=1,
                  label=f"uniform: ln {len(names)}")
    ax[0].set(xscale="log", xlabel="temperature T", ylabel="mean entropy (nats)",
              title="entropy of q_T(teacher)")
    ax[0].legend(fontsize=8)
    rp.errorbar_line(ax[1], ent_t, maxp, "largest probability")
    ax[1].axhline(1 / len(names), color="grey", ls="--", lw=1, label="1 / classes")
    ax[1].set(xscale="log", xlabel="temperature T", ylabel="mean max_i q_i",
              title="confidence of q_T(teacher)")
    ax[1].legend(fontsize=8)
    return rp.save_figure(fig, out_dir / "temperature_entropy.png")


def _reading(temps: list[float], ents: np.ndarray, maxp: np.ndarray, log_c: float,
             num_classes: int) -> str:
    mean = ents.mean(0)
    mono = bool(np.all(np.diff(mean) > 0))
    j = temps.index(20.0) if 20.0 in temps else len(temps) - 1
    return (f"The mean entropy {'rises monotonically' if mono else 'does not rise monotonically'}"
            f" with T, from {mean[0]:.3f} nats at T = {temps[0]:g} to {mean[-1]:.3f} at "
            f"T = {temps[-1]:g} (uniform: ln {num_classes} = {log_c:.3f}). At T = {temps[j]:g} "
            f"the largest soft-target probability averages {maxp[:, j].mean():.3f} against "
            f"1/{num_classes} = {1 / num_classes:.3f} for uniform targets: what the student "
            "learns from is the small, logit-proportional deviation from uniform, the regime "
            "of analysis 2.")
