"""The mixed lab scenario: both journeys at once (weights come from the catalog)."""

from __future__ import annotations

from labcap.loadtests.scenarios.jupyterhub import JupyterHubUser
from labcap.loadtests.scenarios.mlflow import MLflowUser

__all__ = ["JupyterHubUser", "MLflowUser"]
