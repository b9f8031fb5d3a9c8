"""Reproducing Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network".

Seven analyses (docs/method.md section 1), each a module with ``run(workspace) -> result`` (a JSON-able
dict holding every number) and ``render(result, out_dir)`` (the Markdown page and plots):

``temperature``
    the temperature softmax and the entropy of the teacher's soft targets;
``gradient``
    the high-temperature limit of the soft-target gradient and the T^2 factor;
``distillation``
    teacher / small net / distilled small net, and the small-net temperature sweep;
``missing-class``
    distilling without any example of a class, and the test-time bias that recovers it;
``weighting``
    the hard-label weight x temperature grid;
``consistent``
    consistent teaching (Beyer et al. 2022) beside the paper's protocol;
``ensemble``
    an ensemble of small nets distilled into one.

Run ``python -m analyses.hinton <analysis|all> [--quick]`` from the repository root; see
``analyses/hinton/README.md``. Python use::

    from analyses.hinton import make_config, run_analyses
    run_analyses(["temperature"], make_config(quick=True), out_dir="runs/hinton/quick")
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from analyses.hinton import (
    consistent,
    distillation,
    ensemble,
    gradient,
    missing_class,
    temperature,
    weighting,
)
from analyses.hinton.config import HintonConfig, full_config, make_config, quick_config
from analyses.hinton.report import write_index
from analyses.hinton.workspace import DEFAULT_CACHE_DIR, Workspace, load_data, log
from kdexplain.utils import environment_info

#: CLI name -> module, in report order.
ANALYSES = {
    "temperature": temperature,
    "gradient": gradient,
    "distillation": distillation,
    "missing-class": missing_class,
    "weighting": weighting,
    "consistent": consistent,
    "ensemble": ensemble,
}
PAGE_ORDER = [m.NAME for m in ANALYSES.values()]
#: Page name -> the rows its result adds to the index's table of headlines.
SUMMARIES = {m.NAME: m.summary for m in ANALYSES.values() if hasattr(m, "summary")}

__all__ = ["ANALYSES", "HintonConfig", "Workspace", "full_config", "load_data", "make_config",
           "quick_config", "run_analyses"]


def run_analyses(names: Sequence[str], cfg: HintonConfig, out_dir: str | Path, *,
                 workspace: Workspace | None = None, root: str | Path | None = None,
                 download: bool = False, cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
                 command: str | None = None) -> dict[str, dict]:
    """Run analyses one after the other, writing each page (and the index) when it is done.

    Parameters
    ----------
    names : sequence of str
        Keys of :data:`ANALYSES` (``"missing_class"`` is accepted for ``"missing-class"``).
    cfg : HintonConfig
    out_dir : str or Path
        Folder of the pages, plots, ``<name>.json`` results and ``index.md``.
    workspace : Workspace, optional
        Reuse one (its data and cached runs); default: a new one for ``cfg``.
    root, download :
        Data location for ``fashion`` / ``mnist`` (see :func:`kdexplain.data.digits.load_digits`).
    cache_dir : str or Path or None
        Cache of trained runs; ``None`` keeps them in memory.
    command : str, optional
        The command line to print on the pages (default: this process' arguments).

    Returns
    -------
    dict
        Analysis key -> result dict (as written to ``<name>.json``).
    """
    keys = [n.replace("_", "-") for n in names]
    unknown = [n for n in keys if n not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {', '.join(unknown)}; choose from "
                         f"{', '.join(ANALYSES)} or 'all'")
    ws = workspace or Workspace(cfg, load_data(cfg, root, download), cache_dir)
    command = command or "python -m analyses.hinton " + " ".join(sys.argv[1:])
    out_dir = Path(out_dir)
    # the revision before any page is written: a rewritten committed page must not make
    # the next page's tree look "-dirty"
    revision = environment_info().get("git_revision")
    results = {}
    for key in keys:
        module = ANALYSES[key]
        log(f"{key}: running ({cfg.mode} mode, {len(cfg.seeds)} seeds, data {ws.data.name})")
        t0, trained0, load0 = time.perf_counter(), ws.trained, _load_average()
        cpu0 = time.process_time()
        ws.reset_usage()
        result = module.run(ws)
        result["meta"] = {"command": command, "config": cfg.as_dict(),
                          "split_note": ws.data.split_note, "dataset": ws.data.name,
                          "wall_s": time.perf_counter() - t0,
                          "cpu_s": time.process_time() - cpu0,
                          "runs_trained": ws.trained - trained0,
                          "load_average": [load0, _load_average()],
                          "cpu_count": os.cpu_count(),
                          "machine": machine_info(),
                          "nets": ws.usage(),
                          "environment": {**environment_info(), "git_revision": revision}}
        paths = module.render(result, out_dir)
        write_index(out_dir, PAGE_ORDER, SUMMARIES)
        log(f"{key}: done in {result['meta']['wall_s']:.0f} s -> {paths[0]}")
        for line in result.get("headline", []):
            log(f"  {line}")
        results[key] = result
    return results


def render_only(names: Sequence[str], out_dir: str | Path) -> list[Path]:
    """Rebuild pages and plots from the ``<name>.json`` files already in ``out_dir``."""
    from kdexplain.utils import read_json

    out_dir = Path(out_dir)
    written = []
    for n in names:
        module = ANALYSES[n.replace("_", "-")]
        path = out_dir / f"{module.NAME}.json"
        if not path.is_file():
            continue
        result = read_json(path)
        result["headline"] = module.headline(result)
        written += module.render(result, out_dir)
    written.append(write_index(out_dir, PAGE_ORDER, SUMMARIES))
    return written


def machine_info() -> dict:
    """The machine a page was made on: host name, CPU model, cores, torch threads."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"hostname": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "system": platform.platform()}


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none), to read timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
