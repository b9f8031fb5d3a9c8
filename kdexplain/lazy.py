"""Lazy re-exports for the packages' ``__init__`` files (PEP 562).

A package lists the public names of its modules; each module is imported the first time one
of its names is used, so that importing one module of a package (``kdexplain.train.losses``)
does not import the others (the training loop, the config, pydantic). Only the standard
library: the lowest room of the house.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package that re-exports names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str to sequence of str
        Module -> the names it defines that the package re-exports. A module name starting
        with a dot is relative to the package (``".engine"``), else absolute.

    Usage, in a package's ``__init__.py``::

        __getattr__, __dir__, __all__ = lazy_exports(__name__, {".engine": ["quantify"]})
    """
    folders = getattr(sys.modules[package], "__path__", [])
    where: dict[str, str] = {}
    for module, names in exports.items():
        absolute = package + module if module.startswith(".") else module
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name} is exported twice")
            if any(os.path.exists(os.path.join(f, name + ".py")) for f in folders):
                # importing the submodule would set the package's attribute to the module
                raise ValueError(f"{package}: {name} is the name of a submodule too")
            where[name] = absolute

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__, sorted(where)
