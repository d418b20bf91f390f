"""`labcap lab up / status / down` through the CLI, on real services."""

from __future__ import annotations

import json
import os

import psutil
import pytest

from tests.support.cli import labcap

pytestmark = pytest.mark.lab


def test_lab_up_status_down(tmp_path):
    workdir = tmp_path / "lab"
    up = labcap("lab", "up", "--workdir", str(workdir), "--json")
    try:
        assert up.returncode == 0, up.stderr
        endpoints = json.loads(up.stdout)
        assert endpoints["hub_url"].startswith("http://127.0.0.1:")
        assert endpoints["mlflow_url"].startswith("http://127.0.0.1:")
        state = json.loads((workdir / "lab.json").read_text())
        secret = state["endpoints"]["hub_password"]
        assert oct((workdir / "lab.json").stat().st_mode & 0o777) == "0o600"
        assert len(secret) >= 20 and secret not in up.stdout + up.stderr  # never printed
        again = labcap("lab", "up", "--workdir", str(workdir))
        assert again.returncode == 2 and "already running" in again.stderr
        text = labcap("lab", "status", "--workdir", str(workdir))
        assert text.returncode == 0 and text.stdout.startswith("workdir: ")  # JSON only asked
        assert "services:" in text.stdout and "  pid: " in text.stdout
        status = labcap("lab", "status", "--workdir", str(workdir), "--json")
        assert status.returncode == 0, status.stderr
        pids = [s["pid"] for s in json.loads(status.stdout)["services"].values()]
        assert pids and all(psutil.pid_exists(p) for p in pids)
    finally:
        down = labcap("lab", "down", "--workdir", str(workdir))
    assert down.returncode == 0 and "lab stopped" in down.stderr
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    gone = labcap("lab", "status", "--workdir", str(workdir))
    assert gone.returncode == 1
    assert labcap("lab", "down", "--workdir", str(workdir)).returncode == 0
    assert not os.path.exists(workdir / "lab.json")
