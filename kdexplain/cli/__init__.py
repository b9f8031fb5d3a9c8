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
        module = importlib.import_module(f"kdexplain.cli.{name}")
        module.register(app)


class UserError(Exception):
    """A predictable mistake of the user's: printed as one clear message, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script.

    Predictable mistakes (missing files, bad values, unknown layers) print one clear
    ``error:`` line and exit with status 2 instead of a traceback.
    """
    _register_all()
    try:
        app(args=argv, prog_name="kdexplain")
    except SystemExit as e:  # typer's normal exit (help, usage errors, success)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except (UserError, OSError, ValueError, KeyError) as e:  # OSError: missing files, permissions, disk full
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
        return 2
    except KeyboardInterrupt:
        typer.secho("interrupted: finished units are kept; run the same command again to "
                    "resume", fg=typer.colors.YELLOW, err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
