"""The embedded reference lab: real JupyterHub and MLflow as local processes on loopback.

Needs the ``lab`` extra (``pip install 'labcap[lab]'``) and configurable-http-proxy.

The names below are imported from their modules on first use (PEP 562), so importing
``labcap.lab.settings`` (``labcap lab --help``) loads none of the launcher.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labcap.lab._reference import (
        SERVICES,
        LabEndpoints,
        ReferenceLab,
        install_sigterm_handler,
        lab_down,
        lab_status,
    )
    from labcap.lab._state import read_state

_HOMES = {
    "_reference": (
        "SERVICES",
        "LabEndpoints",
        "ReferenceLab",
        "install_sigterm_handler",
        "lab_down",
        "lab_status",
    ),
    "_state": ("read_state",),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "SERVICES",
    "LabEndpoints",
    "ReferenceLab",
    "install_sigterm_handler",
    "lab_down",
    "lab_status",
    "read_state",
]
