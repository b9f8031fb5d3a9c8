"""The README's and docs' code snippets, as written.

A fenced block right after ``<!-- snippet: run -->`` is executed as written (a block that
imports quantus skips without the optional extra); after ``<!-- snippet: tiny -->`` it is
executed in a scratch folder with ``configs/quickstart.yaml`` replaced by ``configs/tiny.yaml``
(the same calls on the toy setting: training and sweeps in seconds); after
``<!-- snippet: scratch -->`` it is executed as written in a scratch folder; after
``<!-- snippet: check -->`` it is only linted for syntax errors and undefined names (the
analyses' examples, which train networks for minutes). Every Python block of these files is
marked: an unmarked one fails. Every ``kdexplain run`` / ``train-triplet`` command line in
any block must load its config with its overrides, and overrides need a ``name=`` of their
own (else the run collides with the base config's run, whose resume check refuses it).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "analyses").glob("*/README.md"))]
_BLOCK = re.compile(r"(?:<!-- snippet: (run|tiny|scratch|check) -->\n)?```(\w*)\n(.*?)\n```", re.S)
_INLINE = re.compile(r"`(kdexplain [^`]+)`")


def _blocks() -> list[tuple[str, str | None, str, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            line = text[:m.start()].count("\n") + 1
            out.append((f"{doc.relative_to(ROOT).as_posix()}:{line}", m.group(1), m.group(2),
                        m.group(3)))
    return out


BLOCKS = _blocks()
MARKED = [b for b in BLOCKS if b[1] is not None]


def test_the_marked_snippets_are_found():
    assert {(b[0].split(":")[0], b[1]) for b in MARKED} >= {
        ("README.md", "run"), ("docs/attribution.md", "run"), ("docs/data.md", "run"),
        ("docs/training.md", "tiny"), ("docs/metrics.md", "scratch"), ("docs/own-models.md", "tiny"),
        ("analyses/hinton/README.md", "check"), ("analyses/spurious/README.md", "check")}


def test_every_python_snippet_is_marked():
    unmarked = [b[0] for b in BLOCKS if b[2] == "python" and b[1] is None]
    assert not unmarked, f"Python blocks without a <!-- snippet: ... --> mark: {unmarked}"


@pytest.mark.parametrize("where,mode,lang,code", [
    # every executed snippet is slow (tiny ones train; run and scratch ones start Python and
    # quantify or build data); only the lint-only "check" snippets are in the fast subset
    pytest.param(*b, marks=pytest.mark.slow) if b[1] != "check" else b
    for b in MARKED], ids=[b[0] for b in MARKED])
def test_marked_snippet(where, mode, lang, code, tmp_path):
    assert lang == "python", f"{where}: only python snippets are marked"
    script = tmp_path / "snippet.py"
    script.write_text(code + "\n", encoding="utf-8")
    if mode == "check":
        proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                               "--select", "E9,F63,F7,F82", str(script)],
                              capture_output=True, text=True)
    else:
        if mode == "tiny":
            assert "configs/quickstart.yaml" in code, f"{where}: a tiny snippet loads the quickstart"
            script.write_text(code.replace("configs/quickstart.yaml",
                                           (ROOT / "configs" / "tiny.yaml").as_posix()) + "\n",
                              encoding="utf-8")
        if re.search(r"^import quantus|^from quantus", code, re.M):
            pytest.importorskip("quantus", reason="the optional extra: pip install -e '.[quantus]'")
        # run: as written, from the repository; tiny and scratch: in a scratch folder
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT if mode == "run" else tmp_path,
                              capture_output=True, text=True, timeout=600 if mode == "tiny" else 300)
    assert proc.returncode == 0, f"{where}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


#: Options of ``run`` / ``train-triplet`` that take no value.
_FLAGS = ("--resume", "--quiet", "-q", "--help")


def _command_lines() -> list[tuple[str, list[str]]]:
    out = []
    inline = []
    for doc in DOCS:
        text = _BLOCK.sub("", doc.read_text(encoding="utf-8"))
        inline += [(f"{doc.relative_to(ROOT).as_posix()} (inline)", None, "", " ".join(m.split()))
                   for m in _INLINE.findall(text)]
    for where, _, _, code in BLOCKS + inline:
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#")[0]) if "kdexplain" in line else []
            for cmd in ("run", "train-triplet"):
                if cmd in words and words[max(0, words.index(cmd) - 1)].endswith("cli") or (
                        words[:2] == ["kdexplain", cmd]):
                    rest = words[words.index(cmd) + 1:]
                    # drop options and the values of the options that take one
                    args = [w for i, w in enumerate(rest) if not w.startswith("-") and not (
                        i > 0 and rest[i - 1].startswith("-") and "=" not in rest[i - 1]
                        and rest[i - 1] not in _FLAGS)]
                    if args and args[0].endswith(".yaml"):
                        out.append((where, args))
    return out


def test_documented_command_lines_load_their_config():
    from kdexplain.config import load_config

    lines = _command_lines()
    assert len(lines) >= 5
    for where, (config, *overrides) in lines:
        if not (ROOT / config).is_file():
            continue  # a user's own config (configs/my.yaml)
        load_config(ROOT / config, overrides)
        if overrides:
            assert any(o.startswith("name=") for o in overrides), (
                f"{where}: {config} with overrides {overrides} needs a name= of its own")
