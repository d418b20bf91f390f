"""The embedded reference lab: real JupyterHub and MLflow as local processes on loopback.

Needs the ``lab`` extra (``pip install 'labcap[lab]'``) and configurable-http-proxy.

The names below are imported from their modules on first use (PEP 562), so importing
``labcap.lab.settings`` (``labcap lab --help``) loads none of the launcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labcap.lazy import lazy_exports

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
__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "SERVICES",
    "LabEndpoints",
    "ReferenceLab",
    "install_sigterm_handler",
    "lab_down",
    "lab_status",
    "read_state",
]
