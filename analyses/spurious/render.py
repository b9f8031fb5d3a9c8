"""Rebuild a report's page and seed-level tables from its saved tables, training nothing.

``python -m analyses.spurious --render-only --out <report folder>`` reads ``per_image.csv``
(every per-image metric of every network), ``accuracy.csv``, ``config.yaml``,
``environment.json`` and ``run.json`` from the folder, recomputes the seed-level comparison
(:func:`analyses.spurious.metrics.compare_conditions`) and the within-run diagnostics from
the per-image table, and writes ``comparison.csv``, ``within_run.csv`` and ``index.md``
again. The figures, the per-image table and the run's settings stay as the run wrote them
(the heat maps need the entropy grids, which only the work folder holds).

A report written before ``run.json`` existed keeps its run's command, date and timings on
its page; :func:`record_from_page` reads them from there (and ``run.json`` is then written).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from analyses.spurious.config import SpuriousConfig
from analyses.spurious.metrics import compare_conditions, within_run_tests
from analyses.spurious.pipeline import ValidationResults
from analyses.spurious.report import RunRecord, write_page
from kdexplain.config import read_yaml
from kdexplain.utils import atomic_write_text, read_json

__all__ = ["load_config", "record_from_page", "render_report"]

#: The files a report folder must hold to be rebuilt (besides its figures).
NEEDED = ("per_image.csv", "accuracy.csv", "config.yaml", "environment.json")

_TUPLE_FIELDS = ("classes", "seeds", "checkpoints", "analysed_epochs", "layers")

_MODE_LINE = re.compile(
    r"^- mode `[^`]+`, (?P<date>[^,]+), (?P<total>\d+) s in all \((?P<timings>[^)]*)\)"
    r"(?: -- (?P<reused>\d+) trained network\(s\) and (?P<cached>\d+) quantification\(s\))?",
    re.MULTILINE)


def load_config(path: Path) -> SpuriousConfig:
    """The validation's settings from its ``config.yaml``."""
    d = read_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(d, dict):
        raise ValueError(f"{path} does not hold the validation's settings (a mapping)")
    known = set(SpuriousConfig.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{path} has settings this version does not know: {unknown}")
    for k in _TUPLE_FIELDS:
        if d.get(k) is not None:
            d[k] = tuple(d[k])
    return SpuriousConfig(**d)


def record_from_page(text: str) -> RunRecord:
    """The run's record from a page written before ``run.json`` existed.

    Reads the command (the first ``bash`` block), the ``- mode ...`` line (date, seconds in
    all, per step, reused networks and quantifications) and the control's digest check.
    """
    command = re.search(r"^```bash\n(.*?)\n```", text, re.MULTILINE | re.DOTALL)
    mode = _MODE_LINE.search(text)
    if command is None or mode is None:
        raise ValueError("the page has no run.json beside it and its 'What was run' section "
                         "(command block and '- mode' line) cannot be read")
    timings = {}
    for part in mode["timings"].split(", "):
        step, seconds, unit = part.rsplit(" ", 2)
        if unit != "s":
            raise ValueError(f"cannot read the timing {part!r} on the page")
        timings[step] = float(seconds)
    return RunRecord(command=command[1], generated_utc=mode["date"], timings=timings,
                     total_s=float(mode["total"]), reused=int(mode["reused"] or 0),
                     cached_units=int(mode["cached"] or 0),
                     same_initial_weights="(checked: equal weight digests" in text)


def _figures(out: Path, cfg: SpuriousConfig) -> list[Path]:
    figures = [out / "heatmaps.png"] + [out / f"per_image_{layer}.png" for layer in cfg.layers]
    missing = [f.name for f in figures if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{out} lacks the run's figures {missing}; only a complete "
                                "report folder can be rebuilt (run the analysis again)")
    return figures


def render_report(out_dir: str | Path, *, command: str) -> Path:
    """Rebuild ``comparison.csv``, ``within_run.csv``, ``index.md`` (and ``run.json``).

    Parameters
    ----------
    out_dir : str or Path
        A report folder written by :func:`analyses.spurious.report.write_report`.
    command : str
        The command that rebuilds it (named on the page).

    Returns
    -------
    Path of ``index.md``.
    """
    out = Path(out_dir)
    missing = [n for n in NEEDED if not (out / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{out} is not a complete report folder of analyses.spurious: "
                                f"it lacks {', '.join(missing)}")
    cfg = load_config(out / "config.yaml")
    figures = _figures(out, cfg)
    if (out / "run.json").is_file():
        record = RunRecord.from_dict(read_json(out / "run.json"))
    else:
        record = record_from_page((out / "index.md").read_text(encoding="utf-8")
                                  if (out / "index.md").is_file() else "")
    # pandas reads back the exact floats it wrote, so the tests give the run's numbers
    per_image = pd.read_csv(out / "per_image.csv")
    accuracy = pd.read_csv(out / "accuracy.csv")
    comparison = compare_conditions(per_image)
    within_run = within_run_tests(per_image)
    res = ValidationResults(cfg, accuracy, per_image, comparison, grids={}, spans={}, sets={},
                            runs={}, within_run=within_run)
    atomic_write_text(out / "comparison.csv", comparison.to_csv(index=False))
    atomic_write_text(out / "within_run.csv", within_run.to_csv(index=False))
    env = read_json(out / "environment.json")
    return write_page(res, out, record, env, figures, rendered_by=command)
