"""``kdexplain configs`` and ``kdexplain docs``: what ships with the package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("configs")(configs_command)
    app.command("docs")(docs_command)


def shipped_docs() -> dict[str, Path]:
    """The documents that ship with the package, ``{name: path}`` (``method`` for
    ``docs/method.md``): the ones help texts and reports cite."""
    from importlib.resources import files

    folder = Path(str(files("kdexplain") / "docs"))
    return {p.stem: p for p in sorted(folder.glob("*.md"))} if folder.is_dir() else {}


def configs_command() -> None:
    """List the shipped configs: give a name to `kdexplain run` (`kdexplain run tiny`),
    from any folder."""
    from kdexplain.config import config_description, shipped_configs

    configs = shipped_configs()
    width = max((len(n) for n in configs), default=0)
    for name, path in configs.items():
        typer.echo(f"{name:<{width}}  {config_description(path)}")


def docs_command(
    name: Annotated[Optional[str], typer.Argument(
        metavar="[NAME]", help="A document (method, data, metrics, ...): print it.",
        show_default=False)] = None,
) -> None:
    """List the shipped documents (docs/*.md, the ones help and reports cite) with their
    paths, or print one."""
    docs = shipped_docs()
    if name is None:
        width = max((len(n) for n in docs), default=0)
        for doc, path in docs.items():
            typer.echo(f"{doc:<{width}}  {path}")
        return
    key = Path(name).stem
    if key not in docs:
        raise ValueError(f"no document {name!r}; shipped: {', '.join(docs) or 'none'}")
    typer.echo(docs[key].read_text(encoding="utf-8"))
