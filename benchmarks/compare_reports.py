"""Compare a report with a committed one: does every value land inside its intervals?

Usage::

    python benchmarks/compare_reports.py reports/quickstart --old-rev HEAD [--out FILE]
    python benchmarks/compare_reports.py NEW_REPORT --old OLD_REPORT [--labels OLD NEW]
    python benchmarks/compare_reports.py --study NEW_STUDY --old OLD_STUDY \
        --labels first second --out-dir reports/study_rerun

``--labels`` names the two reports in what is written (default: their paths; a folder of
another machine's scratch space is not worth recording). ``--study`` compares every variant
of two study folders (``kdexplain run`` on a config with variants): one page per variant
in ``--out-dir`` and ``verdicts.csv`` (``variant``, ``hypothesis``, ``first``,
``second``: each hypothesis's verdict in the old and the new study). Exit status 1 when a
hypothesis verdict differs.

For every model and metric of ``concept_metrics.csv`` it prints the old value with its 95 %
interval, the new value and whether the new value lies inside the old interval; then the
seed-level S - B differences of ``hypotheses.csv`` side by side, with their intervals and
verdicts; then each training run's values (``per_seed.csv``), old -> new, to see which
run moved. ``--old-rev`` reads the old report from git (``git show REV:PATH``), so a re-run
can be checked against the committed report without a second copy. Used for issue 15 (the
engine's new default against the previous one) and issue 10 (a re-run inside the committed
seed-level intervals). Exit status 1 when a value lies outside.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

METRICS = ("N_fg", "N_bg", "fg_ratio", "D_mean", "D_std", "rho")


def _read(folder: Path, name: str, rev: str | None) -> pd.DataFrame:
    if rev is None:
        return pd.read_csv(folder / name)
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True,
                          text=True, check=True).stdout.strip()
    rel = (folder.resolve() / name).relative_to(Path(root).resolve())
    text = subprocess.run(["git", "show", f"{rev}:{rel.as_posix()}"], capture_output=True,
                          text=True, check=True).stdout
    return pd.read_csv(io.StringIO(text))


def _verdict_rows(h: pd.DataFrame) -> pd.DataFrame:
    return h[h["carries_verdict"]].set_index("metric")


def _per_seed(new: Path, old: Path, rev: str | None) -> list[str]:
    """Each training run's values, old -> new (``per_seed.csv``): which run moved."""
    try:
        pn = _read(new, "per_seed.csv", None).set_index(["role", "seed"])
        po = _read(old, "per_seed.csv", rev).set_index(["role", "seed"])
    except (FileNotFoundError, subprocess.CalledProcessError):
        return []
    cols = [c for c in (*METRICS, "val_acc") if c in po.columns and c in pn.columns]
    lines = ["", "Each training run, old -> new (`per_seed.csv`):", "",
             "| model | seed | " + " | ".join(cols) + " |", "|---|---:|" + "---|" * len(cols)]
    for key in po.index:
        if key not in pn.index:
            continue
        cells = [f"{po.loc[key, c]:.4g} -> {pn.loc[key, c]:.4g}" for c in cols]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return lines


def compare(new: Path, old: Path, rev: str | None,
            labels: tuple[str, str] | None = None) -> tuple[str, int]:
    """The comparison as Markdown, and the number of values outside the old intervals."""
    cn = _read(new, "concept_metrics.csv", None).set_index("role")
    co = _read(old, "concept_metrics.csv", rev).set_index("role")
    old_name, new_name = labels or (str(old), str(new))
    lines = [f"Old: `{old_name}`" + (f" at git `{rev}`" if rev else "") + f"; new: `{new_name}`.",
             "",
             "| model | metric | old value [95% interval] | new value | inside |",
             "|---|---|---|---|---|"]
    outside = 0
    for role in co.index:
        if role not in cn.index:
            continue
        for m in METRICS:
            lo, hi, v_old = co.loc[role, [f"{m}_ci_low", f"{m}_ci_high", f"{m}_mean"]]
            v_new = cn.loc[role, f"{m}_mean"]
            inside = bool(lo <= v_new <= hi)
            outside += not inside
            lines.append(f"| {role} | {m} | {v_old:.4g} [{lo:.4g}, {hi:.4g}] | {v_new:.4g} | "
                         f"{'yes' if inside else '**no**'} |")
    hn = _verdict_rows(_read(new, "hypotheses.csv", None))
    ho = _verdict_rows(_read(old, "hypotheses.csv", rev))
    lines += ["", "S − B where the verdicts are read (old / new):", "",
              "| metric | level | old S − B [95% CI] | new S − B [95% CI] | old verdict | "
              "new verdict |", "|---|---|---|---|---|---|"]
    for m in ho.index:
        if m not in hn.index:
            continue
        o, n = ho.loc[m], hn.loc[m]
        lines.append(f"| {m} | {n['level']} | {o['diff']:.4g} [{o['diff_ci_low']:.4g}, "
                     f"{o['diff_ci_high']:.4g}] | {n['diff']:.4g} [{n['diff_ci_low']:.4g}, "
                     f"{n['diff_ci_high']:.4g}] | {o['verdict']} | {n['verdict']} |")
    lines += ["", f"{outside} of {len(co.index) * len(METRICS)} values lie outside the old "
              "intervals."]
    lines += _per_seed(new, old, rev)
    return "\n".join(lines) + "\n", outside


def hypothesis_verdicts(report: Path) -> dict[int, str]:
    """Each hypothesis's verdict in a report (``summary.json``)."""
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    return {int(v["hypothesis"]): str(v["verdict"]) for v in summary["verdicts"]}


def study_variants(study: Path) -> list[str]:
    """The variants of a study folder: its ``index.json``'s, else (reports written one by one
    with ``kdexplain report``) the subfolders that hold a ``summary.json``."""
    index = study / "index.json"
    if index.is_file():
        return list(json.loads(index.read_text(encoding="utf-8"))["variants"])
    found = sorted(p.name for p in study.iterdir() if (p / "summary.json").is_file()) \
        if study.is_dir() else []
    if not found:
        raise SystemExit(f"error: {study} is no study report: it has no index.json and no "
                         "subfolder with a summary.json")
    return found


def compare_studies(new: Path, old: Path, labels: tuple[str, str], out_dir: Path,
                    command: str) -> int:
    """Compare every variant of two studies; write the pages and ``verdicts.csv``.

    Returns the number of hypothesis verdicts that differ."""
    variants = study_variants(old)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for variant in variants:
        text, _ = compare(new / variant, old / variant, None, labels)
        (out_dir / f"{variant}.md").write_text(_page(command, text), encoding="utf-8")
        first, second = hypothesis_verdicts(old / variant), hypothesis_verdicts(new / variant)
        rows += [{"variant": variant, "hypothesis": h, "first": first[h],
                  "second": second.get(h, "(missing)")} for h in sorted(first)]
    table = pd.DataFrame(rows, columns=["variant", "hypothesis", "first", "second"])
    table.to_csv(out_dir / "verdicts.csv", index=False)
    moved = int((table["first"] != table["second"]).sum())
    print(table.to_string(index=False))
    print(f"{moved} of {len(table)} hypothesis verdicts differ")
    return moved


def _page(command: str, text: str) -> str:
    from datetime import datetime, timezone

    return (f"# Report comparison\n\nGenerated by `{command}` on "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n\n{text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new", type=Path, nargs="?", help="the new report folder")
    ap.add_argument("--study", type=Path, default=None,
                    help="the new study folder (compare every variant with --old's)")
    ap.add_argument("--labels", nargs=2, metavar=("OLD", "NEW"), default=None,
                    help="names of the two reports in what is written (default: the paths)")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="with --study: where the pages and verdicts.csv go")
    ap.add_argument("--old", type=Path, default=None, help="the old report folder "
                    "(default: the new folder's path, read with --old-rev)")
    ap.add_argument("--old-rev", default=None, help="read the old report from this git revision")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = ap.parse_args()
    cmd = " ".join(["python", "benchmarks/compare_reports.py", *sys.argv[1:]])
    if args.study is not None:
        if args.old is None or args.out_dir is None:
            ap.error("--study needs --old OLD_STUDY and --out-dir")
        labels = tuple(args.labels) if args.labels else (str(args.old), str(args.study))
        sys.exit(1 if compare_studies(args.study, args.old, labels, args.out_dir, cmd) else 0)
    if args.new is None:
        ap.error("give the new report folder (or --study)")
    if args.old is None and args.old_rev is None:
        ap.error("give --old FOLDER or --old-rev REV")
    rev = args.old_rev
    if rev is not None:  # record the commit, not a name that moves (HEAD)
        rev = subprocess.run(["git", "rev-parse", "--short", rev], capture_output=True,
                             text=True, check=True).stdout.strip()
    text, outside = compare(args.new, args.old or args.new, rev,
                            tuple(args.labels) if args.labels else None)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(_page(cmd, text), encoding="utf-8")
    sys.exit(1 if outside else 0)


if __name__ == "__main__":
    main()
