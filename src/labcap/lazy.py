"""A package's public names, imported from their modules on first use (PEP 562).

``labcap --help`` reads the settings records inside ``verify/``, ``deploy_profiles/`` and
``lab/``; importing such a record imports its package's ``__init__`` first, which must not
load numpy, jinja2 or the lab's launcher for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, tuple[str, ...]], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``homes`` maps each submodule to the names
    it provides; a name is imported on first use and kept in ``namespace``."""
    module_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
