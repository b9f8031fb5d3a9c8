"""Tables, figures and ``index.md`` of the localisation analysis (generated, never edited)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analyses.localisation.pipeline import METRICS, ROLES
from kdexplain import denormalize
from kdexplain.concepts import seed_paired_test
from kdexplain.utils import atomic_write_text, environment_info, write_json
from kdexplain.utils.render import RELEVANCE_CMAP, format_p, markdown_table, save_png

SHORT = {"PointingGame": "PG", "RelevanceRankAccuracy": "RRA", "RelevanceMassAccuracy": "RMA"}


def spread(values: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Mean, sd over images (pooled within seeds) and sd over seed means, per group ``by``."""
    seed_means = values.groupby(by + ["seed"])[metric].mean().reset_index()
    out = values.groupby(by)[metric].agg(mean="mean", n="count").reset_index()
    within = values.groupby(by + ["seed"])[metric].std(ddof=1).groupby(level=by).mean()
    out = out.merge(within.rename("sd_images").reset_index(), on=by)
    seeds = seed_means.groupby(by)[metric].agg(sd_seeds=lambda s: s.std(ddof=1), seeds="count")
    return out.merge(seeds.reset_index(), on=by)


def _cell(row: pd.Series) -> str:
    text = f"{row['mean']:.3f} ± {row['sd_images']:.3f}"
    if row["seeds"] > 1:
        text += f" (seeds ± {row['sd_seeds']:.3f})"
    return text


def quickstart_table(per_image: pd.DataFrame, metric: str) -> str:
    """Markdown: method x role, mean ± sd over images (and over seeds when several)."""
    q = per_image[per_image.group == "quickstart"]
    s = spread(q, metric, ["method", "network"])
    methods = list(dict.fromkeys(q.method))
    rows = [[m] + [_cell(s[(s.method == m) & (s.network == r)].iloc[0]) for r in ROLES]
            for m in methods]
    chance = q.drop_duplicates(["network", "seed", "image"]).mask_share.mean()
    rows.append(["chance (mask share)", f"{chance:.3f}"] + [""] * (len(ROLES) - 1))
    heads = ["method"] + [r[0].upper() + r[1:] for r in ROLES]
    return markdown_table(pd.DataFrame(rows, columns=heads))


def spurious_differences(per_image: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per method and set: neutral and spurious means, and spurious - neutral per seed."""
    sp = per_image[per_image.group == "spurious"]
    wide = sp.pivot_table(index=["set", "method", "seed", "image"], columns="network",
                          values=metric).reset_index()
    wide["diff"] = wide["spurious"] - wide["neutral"]
    rows = []
    for (set_name, method), g in wide.groupby(["set", "method"], sort=False):
        per_seed = g.groupby("seed")["diff"].mean()
        # the seed is the unit of replication: the exact sign-flip test over the per-seed
        # differences (two-sided; the images of one seed are not independent evidence)
        test = seed_paired_test(per_seed.to_numpy(), np.zeros(len(per_seed)))
        rows.append({"set": set_name, "method": method, "neutral": g.neutral.mean(),
                     "spurious": g.spurious.mean(), "diff": g["diff"].mean(),
                     "diff_sd_images": g["diff"].std(ddof=1),
                     "diff_per_seed": ", ".join(f"{v:+.3f}" for v in per_seed),
                     "n_seeds": test.n, "p_value": test.p_value,
                     "all_seeds_lower": bool((per_seed < 0).all())})
    return pd.DataFrame(rows)


def spurious_table(diff: pd.DataFrame) -> str:
    rows = [[r["set"], r["method"], f"{r['neutral']:.3f}", f"{r['spurious']:.3f}",
             f"{r['diff']:+.3f} ± {r['diff_sd_images']:.3f}", r["diff_per_seed"],
             format_p(r["p_value"])]
            for _, r in diff.iterrows()]
    heads = ["image set", "method", "neutral network", "spurious network",
             "spurious − neutral ± sd (images)", "per seed", "sign-flip p (seeds)"]
    return markdown_table(pd.DataFrame(rows, columns=heads))


def cost_table(cost: pd.DataFrame) -> str:
    c = cost.assign(rows_per_image=cost.forward_rows / cost.images,
                    seconds_per_image=cost.seconds / cost.images)
    g = c.groupby("method", sort=False).agg(rows=("rows_per_image", "mean"),
                                            secs=("seconds_per_image", "mean"),
                                            total=("seconds", "sum"))
    rows = [[m, f"{r['rows']:.0f}", f"{r['secs']:.3f}", f"{r['total']:.1f}"]
            for m, r in g.iterrows()]
    heads = ["method", "forward rows per image", "seconds per image", "seconds in this run"]
    return markdown_table(pd.DataFrame(rows, columns=heads))


def maps_figure(kept: dict, images: dict, rows: list[tuple], path: Path,
                n_images: int = 2) -> Path:
    """Rows: (group, network, seed, set) x images; columns: the image, then each method."""
    methods = list(dict.fromkeys(k[4] for k in kept))
    pairs = [(r, i) for r in rows for i in range(min(n_images, len(images[r[3]]["labels"])))]
    fig = Figure(figsize=(1.6 * (len(methods) + 1), 1.6 * len(pairs)))
    axes = fig.subplots(len(pairs), len(methods) + 1, squeeze=False)
    for row_axes, (key, i) in zip(axes, pairs, strict=True):
        data = images[key[3]]
        rgb = denormalize(data["images"][i]).permute(1, 2, 0).numpy()
        mask = data["masks"][i].numpy().astype(float)
        row_axes[0].imshow(rgb)
        row_axes[0].set_ylabel(f"{key[1]} s{key[2]}\n{key[3]} #{i}", fontsize=7)
        for ax, method in zip(row_axes[1:], methods, strict=True):
            ax.imshow(kept[(*key, method)][i].numpy(), cmap=RELEVANCE_CMAP)
            ax.contour(mask, levels=[0.5], colors="cyan", linewidths=0.6)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, title in zip(axes[0], ["image"] + methods, strict=True):
        ax.set_title(title, fontsize=7)
    return save_png(fig, path, dpi=90, bbox_inches="tight")


def answer(per_image: pd.DataFrame, diff: pd.DataFrame | None) -> list[str]:
    """The short answer in words, read off the tables."""
    q = per_image[per_image.group == "quickstart"]
    rma = q.groupby(["network", "method"]).RelevanceMassAccuracy.mean().unstack()
    rra = q.groupby(["network", "method"]).RelevanceRankAccuracy.mean().unstack()
    chance = q.drop_duplicates(["network", "seed", "image"]).mask_share.mean()
    out = []
    for role in ROLES:
        order = rma.loc[role].sort_values(ascending=False)
        pos = list(order.index).index("PE layer") + 1
        out.append(f"- **{role}**: by mass accuracy the best map is {order.index[0]} "
                   f"({order.iloc[0]:.3f}); PE layer is {pos} of {len(order)} "
                   f"({order['PE layer']:.3f}), PE logit {order['PE logit']:.3f}; "
                   f"chance is {chance:.3f}. By rank accuracy PE layer scores "
                   f"{rra.loc[role, 'PE layer']:.3f} (best: {rra.loc[role].idxmax()}, "
                   f"{rra.loc[role].max():.3f}).")
    if diff is not None and len(diff):
        tied = diff[diff.set == "tied"]
        moved = [m for m, low in zip(tied.method, tied.all_seeds_lower, strict=True) if low]
        kept = [m for m in tied.method if m not in moved]
        n_seeds = int(tied.n_seeds.max())
        out.append(f"- **spurious background** (tied images, mass accuracy, spurious − neutral "
                   f"network, {n_seeds} seeds): the map moves off the object in every seed for "
                   f"{', '.join(moved) or 'no method'}"
                   + (f" (exact sign-flip p over seeds {format_p(tied.p_value.max())} or less)"
                      if moved else "")
                   + f"; not in every seed for {', '.join(kept) or 'no method'}.")
    return out


def write_report(per_image: pd.DataFrame, cost: pd.DataFrame, kept: dict, images: dict,
                 out: Path, *, command: str, wall_s: float, settings: dict,
                 notes: list[str]) -> Path:
    """Write ``index.md``, the CSVs, the figures and ``environment.json`` into ``out``."""
    out = Path(out)
    env = environment_info()  # before anything is written: the revision must not read -dirty
    (out / "figures").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "per_image.csv", per_image.to_csv(index=False))
    atomic_write_text(out / "cost.csv", cost.to_csv(index=False))
    write_json(out / "environment.json", env)
    lines = ["# Do the knowledge maps find the object?", "",
             "Generated by the command below; never edited by hand.", "",
             f"- command: `{command}`", f"- wall time: {wall_s:.0f} s",
             f"- machine: {env.get('platform')}, torch threads {env.get('torch_threads')}, "
             f"GPU {env.get('gpu') or 'none'}", f"- date (UTC): {env.get('time_utc')}",
             f"- git revision: {env.get('git_revision')}",
             "- settings: " + ", ".join(
                 f"{k}={'the default preset' if v is None else v}" for k, v in settings.items()),
             ""]
    lines += [f"- note: {n}" for n in notes]
    diff = None
    if (per_image.group == "spurious").any():
        diff = pd.concat([spurious_differences(per_image, m).assign(metric=m)
                          for m in ("RelevanceMassAccuracy", "RelevanceRankAccuracy")])
        atomic_write_text(out / "spurious_differences.csv", diff.to_csv(index=False))
    rma_diff = None if diff is None else diff[diff.metric == "RelevanceMassAccuracy"]
    lines += ["", "## Answer", ""] + answer(per_image, rma_diff)
    lines += ["", "## What is compared", "",
              "Every map is one non-negative value per pixel: PE layer = the perturbation "
              "entropy of the analysed layer's whole feature (no class), PE logit = the "
              "class-conditional perturbation entropy of the label's logit, both as the "
              "`normalized` map (`(max H - H_i) / (max H - min H)`); Captum's Occlusion "
              f"(a square of {settings.get('occlusion_window', '?')} x "
              f"{settings.get('occlusion_window', '?')} pixels set to zero, slid by "
              f"{settings.get('occlusion_stride', '?')} pixels), FeatureAblation (each "
              f"cell of a {settings.get('ablation_grid', '?')} x "
              f"{settings.get('ablation_grid', '?')} grid set to zero), Saliency and "
              "IntegratedGradients explain the label's logit, read as the magnitude summed "
              "over colour channels. Quantus scores each map against the exact object mask "
              "(`abs=True, normalise=True`): PointingGame (is the map's maximum on the "
              "object), RelevanceRankAccuracy (share of the top-|mask| pixels on the object), "
              "RelevanceMassAccuracy (share of the map's mass on the object). A map that "
              "ignores the object scores about the mask's share of the image (chance).", ""]
    for metric in METRICS:
        lines += [f"## Quickstart T, S, B: {metric} ({SHORT[metric]})", "",
                  "mean ± sd over images" + " (and over seeds)" * (per_image.seed.nunique() > 1),
                  "", quickstart_table(per_image, metric), ""]
    if diff is not None:
        for metric in ("RelevanceMassAccuracy", "RelevanceRankAccuracy"):
            lines += [f"## Spurious-background networks: {metric}", "",
                      "Same images for both networks of a seed; *tied*: backgrounds rendered "
                      "with p = 1 (the background names the class), *neutral*: backgrounds "
                      "tied to no class. A map that moves onto the background has a "
                      "negative difference.", "",
                      spurious_table(diff[diff.metric == metric]), ""]
    lines += ["## Cost", "", "Forward rows = images entering the network (for the "
              "perturbation entropy, up to its layer only; PE and the gradient methods also "
              "run a backward pass per row). Seconds on the machine above, shared.", "",
              cost_table(cost), ""]
    fig_rows = [("quickstart", r, s, "val") for r in ROLES
                for s in sorted(per_image[per_image.group == "quickstart"].seed.unique())[:1]]
    maps_figure(kept, images, fig_rows, out / "figures" / "quickstart_maps.png")
    lines += ["## Figures", "", "Cyan: the object's outline.", "",
              "![quickstart maps](figures/quickstart_maps.png)", ""]
    if diff is not None:
        sp_rows = [("spurious", c, 0, "tied") for c in ("neutral", "spurious")]
        maps_figure(kept, images, sp_rows, out / "figures" / "spurious_maps.png")
        lines += ["![spurious maps](figures/spurious_maps.png)", ""]
    lines += ["## Files", "", "`per_image.csv` (every score), `cost.csv`, "
              "`spurious_differences.csv`, `environment.json`, `figures/`.", ""]
    return atomic_write_text(out / "index.md", "\n".join(lines))
