"""Rooms with one job: no module of kdexplain over 500 lines, no function over 100 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 100


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_no_module_of_kdexplain_is_over_500_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in _sources("kdexplain")}
    assert len(sizes) > 50  # the tree was found
    too_long = {p: n for p, n in sizes.items() if n > MAX_FILE_LINES}
    assert not too_long, f"split these modules by job: {too_long}"


def test_no_function_is_over_100_lines_with_its_docstring():
    too_long = {}
    for path in _sources("kdexplain", "analyses"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert not too_long, too_long


def test_the_limits_catch_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    node = ast.parse(f"def f():\n{body}\n").body[0]
    assert node.end_lineno - node.lineno + 1 == MAX_FUNCTION_LINES + 1
