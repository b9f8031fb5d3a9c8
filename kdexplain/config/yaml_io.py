"""Reading YAML safely: plain data only, no aliases, bounded size and depth."""

from __future__ import annotations

from typing import Any

import yaml

from kdexplain.config.errors import ConfigError

__all__ = ["MAX_CONFIG_BYTES", "MAX_YAML_DEPTH", "YamlAliasError", "read_yaml"]


#: The largest config file read (bytes): a config is a page of settings, not data.
MAX_CONFIG_BYTES = 1 << 20


class YamlAliasError(ConfigError):
    """A YAML document uses an alias (``*name``), which kdexplain configs refuse."""


#: The deepest nesting of lists and mappings a config may have (a config has 4 levels; a
#: file of 100,000 ``[`` would exhaust Python's recursion).
MAX_YAML_DEPTH = 32


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases (``*name``): a few lines of nested aliases (a
    "billion laughs" document) expand into gigabytes, and a config never needs them. The
    nesting depth is capped at :data:`MAX_YAML_DEPTH`."""

    _depth = 0

    def compose_node(self, parent, index):  # noqa: D401 - PyYAML's hook
        # an alias of a defined anchor is what expands; an undefined one is PyYAML's error
        if self.check_event(yaml.AliasEvent) and self.peek_event().anchor in self.anchors:
            mark = self.peek_event().start_mark
            raise YamlAliasError(
                f"{mark.name}, line {mark.line + 1}: YAML aliases (*name) are not allowed in "
                "kdexplain configs (nested aliases can expand a small file into gigabytes); "
                "write the value out in full")
        if self._depth >= MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(f"{mark.name}, line {mark.line + 1}: lists and mappings nested "
                              f"deeper than {MAX_YAML_DEPTH} levels; a config is a page of "
                              "settings")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text safely: plain data only, no aliases, at most :data:`MAX_CONFIG_BYTES`.

    Raises
    ------
    ConfigError
        Invalid YAML, an alias, or a document over the size limit; the message names
        ``source``.
    """
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a "
                          "page of settings, not data")
    loader = _NoAliasLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(f"config {source} is not valid YAML: {e}") from None
    finally:
        loader.dispose()
