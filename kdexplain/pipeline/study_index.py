"""The index of a study: every variant's verdicts, under which estimator, and over b.

``kdexplain run`` on a config with ``variants`` writes ``<report>/index.json`` (what ran:
the variants' overrides, the wall time, the machine, the command) and renders
``<report>/index.md`` from it and from what lies in each variant's folder:

- the report's verdicts (the config's preset at its ``b``, all the report's images);
- how each moves over ``b`` = 0.1 ... 0.4 (``threshold_curve.csv``: fragile or stable);
- when ``kdexplain calibrate`` has written ``<variant>/calibration/calibration.json``, the
  verdicts on its subset under the reference preset at ``b``, the default at ``b`` and the
  default at the calibrated ``b'``.

``kdexplain calibrate`` re-renders the index of the study its ``--out`` lies in, so a
calibration run after the study shows up in the index without re-running anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from kdexplain.config import ExperimentConfig
from kdexplain.utils import atomic_write_text, environment_info, read_json, write_json

log = logging.getLogger("kdexplain.pipeline")

INDEX_JSON = "index.json"

#: What each preset spends per image and checkpoint (docs/method.md section 3.4).
PRESET_COST = {
    "default": "250 sample-passes per image and checkpoint on a wide feature, more on a "
               "narrow one until its precision is reached",
    "paper": "the reference's descent path and kept iterate with 16 samples per step, "
             "about 640 sample-passes per image and checkpoint; b = 0.2 is the paper's",
    "reference": "the original optimisation, 5,760 sample-passes per image and checkpoint",
}


def write_variants_index(cfg: ExperimentConfig, out: Path, done: Sequence[tuple[str, float]],
                         seconds: float, command: str | None) -> Path:
    """``out/index.json`` (what ran, how long, where) and ``out/index.md`` over the
    variants' reports. Returns ``out``."""
    env = environment_info()
    machine = (f"{env.get('platform')}, {os.cpu_count()} CPU core(s), torch "
               f"{(env.get('packages') or {}).get('torch')} with {env.get('torch_threads')} "
               f"thread(s), GPU {env.get('gpu') or 'none'}; finished "
               f"{env.get('time_utc')}")
    out = Path(out)
    write_json(out / INDEX_JSON, {
        "name": cfg.name, "n_seeds": len(cfg.run_seeds()),
        "variants": {v: list(cfg.variants[v]) for v, _ in done},
        "seconds": {v: s for v, s in done}, "total_seconds": seconds,
        "machine": machine, "command": command,
        "concept_threshold": cfg.analysis.concept_threshold, "alpha": cfg.analysis.alpha,
        "preset": cfg.analysis.preset})
    render_variants_index(out)
    return out


def _robustness(folder: Path, b: float, alpha: float) -> dict[int, dict]:
    from kdexplain.concepts.threshold import robustness_from_tests

    path = folder / "threshold_curve.csv"
    if not path.is_file():
        return {}
    st = robustness_from_tests(pd.read_csv(path), b, alpha)
    return {int(r["hypothesis"]): r for r in st.to_dict("records")}


def _calibration(folder: Path) -> dict | None:
    path = folder / "calibration" / "calibration.json"
    return read_json(path) if path.is_file() else None


def _variant_section(out: Path, name: str, overrides: Sequence[str], b: float,
                     alpha: float, preset: str) -> list[str]:
    from kdexplain.pipeline.calibrate import ESTIMATORS
    from kdexplain.utils.render import format_number

    folder = out / name
    summ = read_json(folder / "summary.json")
    verdicts = summ.get("verdicts", [])
    stab = _robustness(folder, b, alpha)
    cal = _calibration(folder)
    under: dict[tuple[str, int], str] = {}
    if cal is not None:
        under = {(v["estimator"], int(v["hypothesis"])): v["verdict"]
                 for v in cal.get("verdicts", [])}
    header = ["hypothesis", f"report: {preset} preset, b = {format_number(b)}",
              "over b = 0.1 ... 0.4"]
    if cal is not None:
        c = cal["calibration"]
        header += [f"subset: reference, b = {format_number(c['reference_threshold'])}",
                   f"subset: default, b = {format_number(c['reference_threshold'])}",
                   f"subset: default, b' = {format_number(c['calibrated_threshold'])}"]
    lines = [f"## {name}", "", "Overrides: " + ", ".join(f"`{o}`" for o in overrides)
             + f". Report: [{name}/index.md]({name}/index.md).", "",
             "| " + " | ".join(header) + " |",
             "|---:|" + "---|" * (len(header) - 1)]
    for v in verdicts:
        h = int(v["hypothesis"])
        s = stab.get(h)
        moves = ("-" if s is None else
                 f"fragile ({s['verdicts']})" if s["fragile"] else f"stable ({s['verdicts']})")
        row = [str(h), f"**{v['verdict']}**", moves]
        if cal is not None:
            row += [under.get((label, h), "not tested (`--checkpoints last`)")
                    for label, _, _ in ESTIMATORS]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if verdicts:
        lines += [f"Scope: {verdicts[0].get('scope')} ({verdicts[0].get('level')}, "
                  f"{verdicts[0].get('n_pairs')} pairs).", ""]
    if cal is not None:
        s = cal["settings"]
        c = cal["calibration"]
        lines += [
            f"Subset ([calibration/calibration.md]({name}/calibration/calibration.md)): each "
            f"model's first {s['n_images']} of its report's images at "
            f"{'the last checkpoint' if s['checkpoints'] == 'last' else 'every checkpoint'}, "
            f"all seeds; the default preset's concept cells agree "
            f"{format_number(c['agreement_uncalibrated'])} with the reference's at b and "
            f"{format_number(c['agreement_calibrated'])} at b' (Jaccard).", ""]
    return lines


def render_variants_index(out: str | Path) -> Path:
    """(Re-)write ``out/index.md`` from ``out/index.json`` and the variants' folders."""
    out = Path(out)
    if not (out / INDEX_JSON).is_file():
        raise FileNotFoundError(f"{out} holds no {INDEX_JSON}: it is not the report folder "
                                "of a config with variants (kdexplain run writes one)")
    meta = read_json(out / INDEX_JSON)
    b, alpha = float(meta["concept_threshold"]), float(meta["alpha"])
    preset = meta.get("preset", "default")  # older indexes: the default
    if "header" in meta:  # an index.json that holds its header lines as they are
        title, header = meta["title"], meta["header"]
    else:
        secs = meta["seconds"]
        title = f"kdexplain study: {meta['name']}"
        header = [
            f"Variants of one experiment, each a report of its own (same structure as the "
            f"quickstart's), with {meta['n_seeds']} seed(s) each.", "",
            f"- Wall time of this session: {meta['total_seconds'] / 60:.1f} min "
            f"({', '.join(f'{v} {s / 60:.1f} min' for v, s in secs.items())}); a resumed "
            "session counts only what it computed.",
            f"- Machine: {meta['machine']}.", ""]
    lines = [f"# {title}", "", *header]
    lines += [
        f"Where each verdict comes from: the report's column is the {preset} preset "
        f"({PRESET_COST.get(preset, 'docs/method.md section 3.4')}) at the config's b on "
        "all the report's images; \"over b\" lists the verdicts the report's own tests give at b = 0.1, "
        "0.15, ..., 0.4 (fragile: more than one). The \"subset\" columns, where a variant "
        "has a `calibration/` (`kdexplain calibrate`), repeat the tests on a subset of the "
        "images under the reference preset (the original optimisation, for which b = 0.2 "
        "was set), the default preset at b and the default preset at the calibrated b' "
        "(docs/method.md section 4). A verdict that differs between the columns depends on the estimator or "
        "the threshold, not on distillation alone.", ""]
    for name, overrides in meta["variants"].items():
        if (out / name / "summary.json").is_file():
            lines += _variant_section(out, name, overrides, b, alpha, preset)
    if meta.get("command"):
        lines += ["## How to reproduce", "", "```bash", meta["command"], "```"]
    atomic_write_text(out / "index.md", "\n".join(lines).rstrip() + "\n")
    return out / "index.md"


def refresh_study_index(calibration_out: str | Path) -> Path | None:
    """Re-render the study index that a calibration's folder belongs to
    (``<study>/<variant>/calibration``); None when it belongs to no study."""
    variant = Path(calibration_out).resolve().parent
    study = variant.parent
    if not (variant / "summary.json").is_file():
        return None
    if not (study / INDEX_JSON).is_file():
        legacy = study / "index.md"
        if not (legacy.is_file() and "Variants of one experiment" in legacy.read_text(
                encoding="utf-8")):
            return None
    path = render_variants_index(study)
    log.info("updated %s", path)
    return path
