"""Loading a config: a file or a shipped name, ``key.sub=value`` overrides, validation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kdexplain.config.errors import ConfigError
from kdexplain.config.overrides import apply_overrides
from kdexplain.config.schema import ExperimentConfig, parse_config
from kdexplain.config.yaml_io import MAX_CONFIG_BYTES, read_yaml

__all__ = ["config_description", "dump_config", "find_run_config", "flatten_config",
           "key_under", "load_config", "resolve_config", "shipped_configs"]


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with the package, ``{name: path}`` (sorted by name).

    They are package data (``kdexplain/configs``, a link to the repository's ``configs/``),
    so a name works from any folder, in a clone or from an installed wheel.
    """
    from importlib.resources import files

    folder = Path(str(files("kdexplain") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def config_description(path: str | Path) -> str:
    """A config's one-line description: the first line of its leading comment, up to the
    end of its first sentence or clause, without a closing parenthesis ('' without one)."""
    first = Path(path).read_text(encoding="utf-8").splitlines()[:1]
    if not first or not first[0].startswith("#"):
        return ""
    text = re.split(r"(?<=[^.])\.\s+(?=[A-Z`])|;\s", first[0].lstrip("#").strip())[0]
    text = re.sub(r"\s*\([^)]*\)\.?$", "", text.rstrip(",;: ."))
    return text.rstrip(",;: .")


def resolve_config(path: str | Path) -> Path:
    """The YAML file of ``path``: an existing file, else a shipped config's name
    (``quickstart`` or ``quickstart.yaml``).

    Raises
    ------
    FileNotFoundError
        Neither: the message lists the shipped configs.
    """
    path = Path(path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if len(path.parts) == 1 and path.suffix in ("", ".yaml") and path.stem in shipped:
        return shipped[path.stem]
    hint = f" Shipped configs (give the name): {', '.join(shipped)}." if shipped else ""
    raise FileNotFoundError(f"config file {path} does not exist.{hint}")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read, override and validate an experiment config.

    Parameters
    ----------
    path : str or Path
        A YAML file, or the name of a shipped config (``quickstart``; see
        :func:`shipped_configs`).
    overrides : list of str
        ``key.sub=value`` items applied before validation (see :func:`apply_overrides`).

    Raises
    ------
    FileNotFoundError
        The file does not exist (the message lists the shipped configs).
    ConfigError
        Invalid YAML, an unknown key, or a bad value: the message names each bad key and
        the allowed keys or values.
    """
    path = resolve_config(path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config "
                          "is a page of settings, not data")
    raw = read_yaml(path.read_text(encoding="utf-8"), str(path))
    if raw is None:
        raise ConfigError(f"config {path} is empty; an experiment needs its settings (start from "
                          "configs/quickstart.yaml or configs/tiny.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides), str(path))


def find_run_config(checkpoint: str | Path) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint file belongs to, or None.

    kdexplain writes ``RUN/<role>/checkpoints[/<phase>]/epoch_XXXX.pt`` and ``RUN/<role>/last.pt``,
    with the run's resolved config at ``RUN/config.yaml``.
    """
    for parent in list(Path(checkpoint).resolve().parents)[:4]:
        if (parent / "config.yaml").is_file():
            return parent / "config.yaml"
    return None


def dump_config(config: ExperimentConfig) -> str:
    """The resolved config as YAML text (every field, defaults included)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, default_flow_style=None)


def flatten_config(d: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config mapping as ``{"section.key": value}`` (leaves only)."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten_config(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def key_under(key: str, prefixes: Sequence[str]) -> bool:
    """Whether a flattened key is one of ``prefixes`` or lies inside one of them."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)
