"""Helpers for tests that need the embedded reference lab (real JupyterHub + MLflow)."""

from __future__ import annotations

import importlib.util
import time

import pytest
import requests

from labcap.errors import LabcapError
from labcap.lab import LabEndpoints
from labcap.lab._reference import find_chp


def require_lab_stack() -> None:
    """Skip (not fail) where the `lab` extra or configurable-http-proxy is not installed."""
    for module in ("jupyterhub", "jupyter_server", "mlflow"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (labcap[lab])")
    try:
        find_chp()
    except LabcapError as exc:
        pytest.skip(str(exc))


def stop_single_user_servers(endpoints: LabEndpoints, timeout_s: float = 60) -> None:
    """Stop every user's running server through the hub API and wait until none is listed.

    The session's shared lab may hold servers that an earlier test's run left behind
    (a load test ends mid-journey); a test that checks its own cleanup starts from none.
    """
    session = requests.Session()
    session.trust_env = False  # loopback only, never a proxy
    session.headers["Authorization"] = f"token {endpoints.api_token}"
    api = f"{endpoints.hub_url}/hub/api"
    deadline = time.monotonic() + timeout_s
    while True:
        r = session.get(f"{api}/users", params={"limit": 1000}, timeout=30)
        r.raise_for_status()
        running = [u["name"] for u in r.json() if u.get("servers", {}).get("")]
        if not running:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"servers still running after {timeout_s:g}s: {running}")
        for name in running:
            session.delete(f"{api}/users/{name}/server", timeout=30)
        time.sleep(1)
