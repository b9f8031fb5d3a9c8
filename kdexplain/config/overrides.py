"""``key.sub=value`` overrides of a raw config mapping (from the command line or a variant)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kdexplain.config.errors import ConfigError
from kdexplain.config.yaml_io import YamlAliasError, read_yaml

__all__ = ["apply_overrides"]


def _parse_value(text: str) -> Any:
    try:
        return read_yaml(text, "override")
    except YamlAliasError:
        raise
    except ConfigError:  # not YAML: the value is the plain string
        return text


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides to a raw config mapping (in place; returned).

    Values are parsed as YAML (``0.1`` -> float, ``[0,1]`` -> list, ``null`` -> None,
    ``a b`` -> string). Intermediate mappings are created as needed; whether a key exists
    is checked by the validation that follows.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value "
                              "(e.g. optim.lr=0.01)")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key part in {key!r}")
        node = raw
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:i + 1])} is a value, "
                                  "not a section")
            node = nxt
        node[parts[-1]] = _parse_value(value)
    return raw
