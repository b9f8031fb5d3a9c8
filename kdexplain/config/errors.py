"""Config errors, and pydantic's validation errors as lines that name each bad key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "format_errors"]


class ConfigError(ValueError):
    """An invalid experiment config; the message names the bad keys and the allowed values."""


def _allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str] | None:
    """Field names of the sub-model that ``loc`` (without its last element) points into."""
    cls: Any = model
    for part in loc[:-1]:
        if not isinstance(part, str) or not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        field = cls.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        subs = [a for a in getattr(ann, "__args__", (ann,))
                if isinstance(a, type) and issubclass(a, BaseModel)]
        cls = subs[0] if subs else None
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return list(cls.model_fields)
    return None


def format_errors(err: ValidationError, source: str, root: type[BaseModel]) -> str:
    """One line per error of ``err``, under a heading naming ``source``; an unknown key
    lists the keys allowed where it stands in ``root``."""
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        key = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(root, loc)
            msg = "unknown key"
            if allowed:
                msg += "; allowed keys here: " + ", ".join(allowed)
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "literal_error":
                expected = (e.get("ctx") or {}).get("expected")
                msg = f"got {e.get('input')!r}; allowed values: {expected}"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)
