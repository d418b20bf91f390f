"""Optional parts of labcap and the extra that brings each: a missing one is one error line
naming the pip command (``labcap[k8s]``, ``[docker]``, ``[gpu]``, ``[profiles]``, ``[lab]``).

Standard library only; imports happen where a command needs the library, never at start-up.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from labcap.errors import MissingExtraError

# a library's import name -> the extra (pyproject.toml) that installs it
EXTRA_OF = {
    "kubernetes": "k8s",
    "docker": "docker",
    "pynvml": "gpu",
    "prometheus_client": "gpu",
    "kubernetes_validate": "profiles",
    "jsonschema": "profiles",
    "jupyterhub": "lab",
    "mlflow": "lab",
}


def require(module: str) -> ModuleType:
    """``module`` imported, or MissingExtraError: ``kubernetes is not installed: pip install
    'labcap[k8s]' brings it``."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] == top:
            raise MissingExtraError(top, EXTRA_OF.get(top, "all")) from None
        raise
