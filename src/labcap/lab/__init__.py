"""The embedded reference lab: real JupyterHub and MLflow as local processes on loopback.

Needs the ``lab`` extra (``pip install 'labcap[lab]'``) and configurable-http-proxy.
"""

from labcap.lab._reference import (
    SERVICES,
    LabEndpoints,
    ReferenceLab,
    install_sigterm_handler,
    lab_down,
    lab_status,
)
from labcap.lab._state import read_state

__all__ = [
    "SERVICES",
    "LabEndpoints",
    "ReferenceLab",
    "install_sigterm_handler",
    "lab_down",
    "lab_status",
    "read_state",
]
