"""The ``kdexplain`` command: a thin layer over the Python API.

Each command lives in its own module of this package, which defines ``register(app)``.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from contextlib import contextmanager

import typer

app = typer.Typer(
    name="kdexplain",
    help="Explain knowledge distillation by quantifying the knowledge inside networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order = order in `kdexplain --help`.
_COMMAND_MODULES = ("pipeline", "data", "train", "quantify", "report", "calibrate",
                    "assemble")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"kdexplain.cli.{name}")
        module.register(app)


DEFAULT_CONFIG = "configs/quickstart.yaml"


def config_and_overrides(args: list[str]) -> tuple[str, list[str]]:
    """``CONFIG [key=value ...]`` (the form of ``run`` and ``train-triplet``) -> the config
    and the overrides; without a config (the first item is an override) the quickstart's."""
    if args and "=" not in args[0]:
        return args[0], list(args[1:])
    return DEFAULT_CONFIG, list(args)


def renamed_option(old: str, new: str, old_value, new_value, default):
    """The value of an option renamed from ``old`` to ``new`` (``old`` works for one release,
    with a warning on stderr); giving both is an error."""
    if old_value is None:
        return new_value
    if new_value != default:
        raise UserError(f"{old} is the old name of {new}: give only {new}")
    typer.secho(f"warning: {old} is deprecated and will be removed in the next release: "
                f"use {new}", fg=typer.colors.YELLOW, err=True)
    return old_value


class UserError(Exception):
    """A predictable mistake of the user's: printed as one clear message, exit code 2."""


def run_app(app: typer.Typer, argv: list[str] | None, *, prog_name: str,
            interrupted: str) -> int:
    """Run a typer app as a command and return its exit status.

    Usage errors and ``--help`` are typer's (status 2 and 0). Predictable mistakes
    (:class:`UserError`, missing files, bad values, unknown keys) print one ``error:`` line
    and return 2 instead of a traceback. Ctrl-C prints ``interrupted`` and returns 130.
    """
    try:
        app(args=argv, prog_name=prog_name)
    except SystemExit as e:  # typer's normal exit (help, usage errors, success)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code == 130:  # typer turns KeyboardInterrupt into a silent exit with status 130
            typer.secho(interrupted, fg=typer.colors.YELLOW, err=True)
        return code
    except (UserError, OSError, ValueError, KeyError) as e:  # OSError: missing files, permissions, disk full
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
        return 2
    return 0


def _interrupt_on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    # `kill`, a scheduler's time limit, torchrun stopping its workers: unwind as Ctrl-C does,
    # so that atomic writes remove their temporary files and locks are released
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` (as SIGINT does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script (see :func:`run_app` for the exit statuses;
    SIGTERM stops a command as Ctrl-C does)."""
    _register_all()
    with sigterm_as_interrupt():
        return run_app(app, argv, prog_name="kdexplain",
                       interrupted="interrupted: finished units are kept; run the same "
                                   "command again to resume")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
