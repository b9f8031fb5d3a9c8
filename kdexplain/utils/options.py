"""Checking keyword options against a callable's signature, with a message in config terms."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["check_options"]


def check_options(factory: Callable[..., Any], options: Mapping[str, Any], what: str,
                  key: str, reserved: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> None:
    """Raise a clear ``ValueError`` when ``options`` holds a name ``factory`` does not take.

    Parameters
    ----------
    factory : callable
        A class or function; a ``**kwargs`` parameter accepts everything.
    options : mapping
        The user's options.
    what : str
        What is being built, for the message (``"dataset 'scenes'"``).
    key : str
        Where the user wrote them (``"data.options"``, ``"model.kwargs"``).
    reserved : tuple of str
        Parameters passed by the caller itself (not options the user may set).
    extra : tuple of str
        Further valid option names, taken by the caller itself (listed in the message).
    """
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if n not in ("self", *reserved)
             and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    valid += [n for n in extra if n not in valid]
    unknown = [k for k in options if k not in valid]
    if not unknown:
        return
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, valid, n=1)
        hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ValueError(f"{key}: unknown option(s) {', '.join(hints)} for {what}; valid options: "
                     f"{', '.join(valid)}")
