"""The ``kdexplain`` command: a thin layer over the Python API.

Each command lives in its own module of this package, which defines ``register(app)``.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Annotated

import typer
from typer.core import TyperArgument, TyperCommand

app = typer.Typer(
    name="kdexplain",
    help="Explain knowledge distillation by quantifying the knowledge inside networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: typer's rich panels tag every option with its type, flags and --help
    # included (`--heatmaps <bool>`), and break docstring lines where the source does
    rich_markup_mode=None,
)

# Order = order in `kdexplain --help`.
_COMMAND_MODULES = ("pipeline", "data", "train", "quantify", "report", "calibrate",
                    "assemble", "package")


class _Argument(TyperArgument):
    """A positional argument shown by its metavar alone: typer appends the Python type
    (``[CONFIG] [KEY=VALUE]... <list[str]>``) and wraps the usage in a second ``[...]...``;
    the help text says what the argument is."""

    def display_type_rich(self, ctx):  # noqa: ARG002 (typer's signature)
        return None

    def _usage_display_name(self) -> str:
        return self.metavar


class _Command(TyperCommand):
    """Every kdexplain command: arguments shown by their metavar (default: the name in
    capitals, ``...`` when repeatable)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                if param.metavar is None:
                    param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
                param.__class__ = _Argument


def _use_command_class(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = _Command
    for group in typer_app.registered_groups:
        _use_command_class(group.typer_instance)


def _register_all() -> None:
    if app.registered_commands:  # main() called again (tests): registered once
        return
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"kdexplain.cli.{name}")
        module.register(app)
    _use_command_class(app)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"kdexplain {version('kdexplain')}")
        except PackageNotFoundError:  # a source tree on PYTHONPATH, never installed
            typer.echo("kdexplain (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _main_options(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Explain knowledge distillation by quantifying the knowledge inside networks."""


#: The config of ``run`` and ``train-triplet`` without one (a shipped config's name).
DEFAULT_CONFIG = "quickstart"


def config_and_overrides(args: list[str]) -> tuple[str, list[str]]:
    """``CONFIG [key=value ...]`` (the form of ``run`` and ``train-triplet``) -> the config
    and the overrides; without a config (the first item is an override) the quickstart's."""
    if args and "=" not in args[0]:
        return args[0], list(args[1:])
    return DEFAULT_CONFIG, list(args)


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


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to the current ``sys.stderr``, which a notebook or a test may
    have replaced since the handler was made (a stream bound once would then be closed)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def log_to_stderr() -> None:
    """Show the pipeline's and the training's progress messages on stderr (rank 0 only)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    for name in ("kdexplain.pipeline", "kdexplain.train"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(logging.INFO)


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
