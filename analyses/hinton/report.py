"""Pages of the Hinton reports (generated, never hand-edited), and their "mean ± std" cells.

Numbers, p-values, tables and PNGs are rendered by :mod:`kdexplain.utils.render`.

A page is built from an analysis' result dict alone, so ``<name>.json`` beside each page
holds every number the page shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kdexplain.utils import atomic_write_text, jsonable, read_json
from kdexplain.utils.render import format_p, save_png

PAPER = "Hinton, Vinyals & Dean (2015), *Distilling the Knowledge in a Neural Network*"


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def fmt_ms(values: Iterable[float], digits: int = 2, scale: float = 1.0,
           suffix: str = "") -> str:
    """``"mean ± std"`` of ``values * scale``, e.g. ``fmt_ms([0.031, 0.035], 2, 100, "%")``."""
    m, s = mean_std(float(v) * scale for v in values)
    return f"{m:.{digits}f} ± {s:.{digits}f}{suffix}"


def paired_t_test(a: Sequence[float], b: Sequence[float], scale: float = 1.0,
                unit: str = "") -> str:
    """``a - b`` paired by seed: "mean ± std, paired t-test p = ... (n = ...)".

    With fewer than two pairs, or identical differences, no p-value can be given and the
    text says so.
    """
    from scipy import stats

    d = (np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) * scale
    m, s = mean_std(d)
    text = f"{m:+.2f} ± {s:.2f}{unit}"
    if d.size < 2:
        return text + f" (n = {d.size}, no test possible)"
    if np.allclose(d, d[0]):
        return text + f" (n = {d.size}, identical in every seed)"
    p = float(stats.ttest_rel(np.asarray(a, float), np.asarray(b, float)).pvalue)
    return text + f" (paired t-test p = {format_p(p)}, n = {d.size})"


def errorbar_line(ax: Axes, x: Sequence[float], per_seed: np.ndarray, label: str,
                  **kwargs) -> None:
    """Plot the mean over seeds (rows of ``per_seed``, shape ``(n_seeds, len(x))``) with a
    +- std band."""
    per_seed = np.asarray(per_seed, dtype=float)
    m = per_seed.mean(axis=0)
    s = per_seed.std(axis=0, ddof=1) if per_seed.shape[0] > 1 else np.zeros_like(m)
    kwargs.setdefault("marker", "o" if len(m) <= 40 else None)  # dense curves: no dots
    line = ax.plot(x, m, ms=4, label=label, **kwargs)[0]
    ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)


def figure(width: float, height: float, ncols: int = 1, **subplots) -> tuple[Figure, object]:
    """The preamble every plot of the pages shares: a constrained-layout figure of
    ``width`` x ``height`` inches and its ``ncols`` axes side by side (``subplots`` goes to
    :meth:`Figure.subplots`, e.g. ``gridspec_kw``)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, **subplots)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as the pages' PNGs are written (110 dpi, tight box); return the path."""
    return save_png(fig, path, dpi=110, bbox_inches="tight")


def setup_section(result: dict) -> str:
    """The "how this was made" section: command, data split, seeds, config, environment."""
    meta = result["meta"]
    env = meta.get("environment", {})
    pk = env.get("packages", {})
    load = meta.get("load_average")
    load_txt = (f"; machine load average {load[0]} at the start, {load[1]} at the end, on "
                f"{meta.get('cpu_count')} cores" if load and load[0] is not None else "")
    nets = meta.get("nets")
    nets_txt = ""
    if nets and nets.get("nets"):
        nets_txt = (f" The {nets['nets']} nets this page uses took {fmt_duration(nets['train_s'])}"
                    " to train in all (wall-clock, as recorded when each was trained"
                    + (f"; {nets['untimed']} of them cached before training times were "
                       "recorded" if nets.get("untimed") else "") + ").")
    machine = meta.get("machine")
    machine_txt = (f"- Machine: {machine['cpu']}, {machine['cores']} cores, "
                   f"{machine['torch_threads']} torch thread(s), host `{machine['hostname']}` "
                   f"({machine['system']})." if machine else "")
    lines = [
        "## How this page was made",
        "",
        f"- Command: `{meta['command']}` (mode `{meta['config']['mode']}`, "
        f"{fmt_duration(meta['wall_s'])} wall-clock for this analysis"
        + (f", {fmt_duration(meta['cpu_s'])} of CPU time" if "cpu_s" in meta else "")
        + f"{load_txt}; "
        f"{meta.get('runs_trained', 0)} nets trained, the rest read from the run cache)."
        + nets_txt,
        *([machine_txt] if machine_txt else []),
        f"- Data: {meta['split_note']}",
        f"- Seeds: {list(meta['config']['seeds'])}; every ± is the sample standard deviation "
        f"over these n = {len(meta['config']['seeds'])} seeds (teacher and students re-trained "
        "per seed).",
        f"- Environment: torch {pk.get('torch')}, {env.get('torch_threads')} CPU thread(s), "
        f"git {env.get('git_revision')}, {env.get('time_utc')}.",
        "",
        "<details><summary>Full configuration</summary>",
        "",
        "```json",
        json.dumps(meta["config"], indent=2, sort_keys=True),  # as <name>.json keeps it
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines)


def write_page(out_dir: str | Path, result: dict, body: str) -> Path:
    """Write ``<name>.md`` (title, body, setup section) and ``<name>.json`` (all numbers)."""
    out_dir = Path(out_dir)
    name = result["name"]
    text = "\n\n".join([f"# {result['title']}", f"Reproducing {PAPER}. "
                        "Generated by `analyses/hinton`; do not edit by hand.",
                        body.strip(), setup_section(result)]) + "\n"
    atomic_write_text(out_dir / f"{name}.json",
                      json.dumps(jsonable(result), indent=1, sort_keys=True, allow_nan=False) + "\n")
    return atomic_write_text(out_dir / f"{name}.md", text)


def render_page(out_dir: str | Path, result: dict, *, paper: str, body: str,
                where: str | None = None, setup: str | None = None,
                setup_title: str = "Our setup", figures: Sequence[Path] = ()) -> list[Path]:
    """Write a page whose body opens as every page's does, and return it with its figures.

    The body is: **Paper (where).** what the paper says; **Our setup.** how we test it (the
    title may differ, e.g. ``"Setup"``; none where ``setup`` is None); then the page's own
    sections. :func:`write_page` adds the title, the paper line and the "how this page was
    made" section.

    Parameters
    ----------
    out_dir : str or Path
    result : dict
        The analysis's result (its ``name``, ``title`` and ``meta`` are read).
    paper, body : str
        Markdown; surrounding blank lines are dropped.
    where : str, optional
        Where in the paper, e.g. ``"section 3"``.
    setup : str, optional
    setup_title : str
    figures : sequence of Path
        The figures already written, listed after the page.

    Returns
    -------
    list of Path
        The page, then ``figures``.
    """
    head = [f"**Paper{f' ({where})' if where else ''}.** {paper.strip()}"]
    if setup is not None:
        head.append(f"**{setup_title}.** {setup.strip()}")
    page = write_page(out_dir, result, "\n\n".join([*head, body.strip()]))
    return [page, *figures]


def write_index(out_dir: str | Path, order: Sequence[str],
                summaries: Mapping[str, Callable[[dict], list[dict]]] | None = None) -> Path:
    """``index.md``: the headlines table, then one entry per analysis page in ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
    order : sequence of str
        Page names (``<name>.json``), in the order they are listed.
    summaries : mapping, optional
        Page name -> function of its result giving rows ``{"protocol", "ours", "paper",
        "separates"}`` for the table of headlines at the top (this folder's pages first,
        then each variant folder's).
    """
    out_dir = Path(out_dir)
    parts = ["# Reproducing Hinton et al. (2015): index", "",
             f"Generated by `analyses/hinton` from the `*.json` results in this folder "
             f"({PAPER}). Run `python -m analyses.hinton all` to regenerate everything; see "
             "`analyses/hinton/README.md`.", ""]
    parts += _headline_table(out_dir, order, summaries or {})
    found, total_s, total_cpu, trained = 0, 0.0, 0.0, 0
    for name in order:
        path = out_dir / f"{name}.json"
        if not path.is_file():
            continue
        res = read_json(path)
        found += 1
        meta = res["meta"]
        total_s += meta["wall_s"]
        total_cpu += meta.get("cpu_s", float("nan"))
        trained += meta.get("runs_trained", 0)
        parts += [f"## [{res['title']}]({name}.md)", "",
                  f"`{meta['command']}` ({meta['config']['mode']} mode, "
                  f"{len(meta['config']['seeds'])} seeds, {meta['wall_s']:.0f} s)", ""]
        parts += [f"- {line}" for line in res.get("headline", [])]
        parts.append("")
    if not found:
        parts.append("No analysis has been run into this folder yet.")
    else:
        parts.append(f"Total wall-clock of the {found} analyses: {total_s:.0f} s, "
                     f"{total_cpu:.0f} s of CPU time ({trained} nets trained). The machine "
                     "may have been shared: each page gives its load average.")
    parts.append("")
    parts += _variants(out_dir, order)
    return atomic_write_text(out_dir / "index.md", "\n".join(parts).rstrip() + "\n")


def _results(folder: Path, order: Sequence[str]) -> list[tuple[str, dict]]:
    return [(n, read_json(folder / f"{n}.json")) for n in order
            if (folder / f"{n}.json").is_file()]


def _headline_table(out_dir: Path, order: Sequence[str],
                    summaries: Mapping[str, Callable[[dict], list[dict]]]) -> list[str]:
    """The paper's headlines, protocol by protocol: ours, the paper's, what separates them."""
    rows = []
    for folder in [out_dir, *sorted(p.parent for p in out_dir.glob("*/index.md"))]:
        prefix = "" if folder == out_dir else f"[{folder.name}/]({folder.name}/index.md): "
        for name, res in _results(folder, order):
            if name in summaries:
                rows += [{**r, "protocol": prefix + r["protocol"]} for r in summaries[name](res)]
    if not rows:
        return []
    lines = ["## The paper's headlines, protocol by protocol", "",
             "| protocol | ours | paper | what separates them |", "|---|---|---|---|"]
    lines += [f"| {r['protocol']} | {r['ours']} | {r['paper']} | {r['separates']} |"
              for r in rows]
    return lines + [""]


def _variants(out_dir: Path, order: Sequence[str]) -> list[str]:
    """The variant folders' commands and headlines."""
    variants = sorted(p.parent for p in out_dir.glob("*/index.md"))
    if not variants:
        return []
    parts = ["## Variants", "", "The same analyses with one setting changed, side by side "
             "with the pages above:", ""]
    for v in variants:
        results = [r for _, r in _results(v, order)]
        cmds = sorted({r["meta"]["command"] for r in results})
        parts.append(f"- [{v.name}/]({v.name}/index.md): " + ", ".join(f"`{c}`" for c in cmds))
        parts += [f"  - {line}" for r in results for line in r.get("headline", [])]
    return parts + [""]


def fmt_duration(seconds: float) -> str:
    """``"42 s"``, ``"12.5 min"`` or ``"1.75 h"``."""
    if not math.isfinite(seconds):
        return "nan"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def scaled_10k(rate: float) -> str:
    """An error rate as the error count it would be on MNIST's 10 000 test images."""
    return f"{rate * 10000:.0f}" if math.isfinite(rate) else "nan"
