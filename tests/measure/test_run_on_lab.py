"""A short real capacity run against the embedded reference lab, through Locust."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.lab

HUB_STEPS = {
    "hub.login_page",
    "hub.login",
    "hub.home",
    "hub.token",
    "hub.spawn",
    "hub.spawn_ready",
    "kernel.start",
    "kernel.execute",
    "kernel.stop",
    "hub.stop",
}
MLFLOW_STEPS = {
    "mlflow.create_experiment",
    "mlflow.create_run",
    "mlflow.log_batch",
    "mlflow.search_runs",
    "mlflow.metric_history",
}


def test_step_load_on_the_reference_lab(reference_lab, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "LABCAP_HUB_PASSWORD": reference_lab.hub_password}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "labcap.cli",
            "run",
            "--host",
            reference_lab.hub_url,
            "--mlflow-url",
            reference_lab.mlflow_url,
            "--scenario",
            "lab",
            "--users",
            "3,6",
            "--step-duration",
            "25s",
            "--settle",
            "5s",
            "--no-calibrate",
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["status"] == "complete"
    assert [s["users"] for s in plan["steps"]] == [3, 6]
    windows = pd.read_parquet(out / "windows.parquet")
    # every journey step was exercised and succeeded at least once over the run
    per_endpoint = windows.groupby("endpoint")[["requests", "failures"]].sum()
    for name in HUB_STEPS | MLFLOW_STEPS:
        assert name in per_endpoint.index, f"{name} never ran: {sorted(per_endpoint.index)}"
        assert per_endpoint.loc[name, "requests"] > per_endpoint.loc[name, "failures"], name
    for e in plan["endpoints"]:
        if e["p50_ms"] is not None:
            assert 0 < e["p50_ms"] <= e["p95_ms"] <= e["p99_ms"] <= e["max_ms"], e
    # spawning a real server takes far longer than an MLflow call: the measurements are real
    spawn = [e for e in plan["endpoints"] if e["endpoint"] == "hub.spawn_ready" and e["p50_ms"]]
    mlflow = [e for e in plan["endpoints"] if e["endpoint"] == "mlflow.create_run" and e["p50_ms"]]
    assert spawn and mlflow and min(s["p50_ms"] for s in spawn) > max(m["p50_ms"] for m in mlflow)
    # the secret never reaches the run directory
    for f in out.iterdir():
        assert reference_lab.hub_password.encode() not in f.read_bytes(), f
