"""The ``kdexplain`` command: a thin layer over the Python API.

Each command lives in its own module of this package, which defines ``register(app)``.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="kdexplain",
    help="Explain knowledge distillation by quantifying the knowledge inside networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order = order in `kdexplain --help`.
_COMMAND_MODULES = ("pipeline", "data", "train", "quantify", "report")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"kdexplain.cli.{name}")
        except ModuleNotFoundError as e:  # TODO(dev): remove once every command module exists
            if e.name == f"kdexplain.cli.{name}":
                continue
            raise
        module.register(app)


class UserError(Exception):
    """A predictable mistake of the user's: printed as one clear message, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    _register_all()
    try:
        app(args=argv, standalone_mode=False)
    except (UserError, FileNotFoundError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        typer.secho("interrupted: finished units are kept; run the same command again to "
                    "resume", fg=typer.colors.YELLOW, err=True)
        return 130
    except SystemExit as e:  # typer/click exits (help, usage errors)
        return int(e.code or 0)
    except Exception as e:
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Exit):
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
