"""`labcap run --target docker --compose-project NAME`: startups recorded while the load runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from labcap.collectors.docker import COMPOSE_PROJECT, COMPOSE_SERVICE
from tests.docker.engine import TEST_IMAGE, free_port

SUPPORT = Path(__file__).parents[1] / "support"


@pytest.fixture
def target():
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "target_server.py")], stdout=subprocess.PIPE, text=True
    )
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


def test_run_target_docker_records_the_projects_startups_per_step(engine, tmp_path, target):
    client = engine.docker
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "labcap.cli", "run", "--target", "docker",
        "--compose-project", "lab", "--host", target,
        "--scenario", str(SUPPORT / "locustfile_target.py"), "--users", "1,2",
        "--step-duration", "3s", "--settle", "1s", "--window", "1s", "--no-calibrate",
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "DOCKER_HOST": engine.host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ids: list[str] = []

    def spawn_during_the_run() -> None:
        deadline = time.monotonic() + 60
        journal = out / "journal.jsonl"
        while time.monotonic() < deadline:  # the load has begun: step 1 is on
            if journal.exists() and '"kind":"start"' in journal.read_text():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        port = free_port()
        ids.append(
            client.api.create_container(
                TEST_IMAGE,
                environment={"PORT": str(port)},
                labels={COMPOSE_PROJECT: "lab", COMPOSE_SERVICE: "hub", "labcap.test": "run"},
                host_config=client.api.create_host_config(network_mode="host"),
            )["Id"]
        )
        client.api.start(ids[-1])

    spawner = threading.Thread(target=spawn_during_the_run)
    spawner.start()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        spawner.join()
        for cid in ids:
            client.api.remove_container(cid, force=True)
    assert proc.returncode == 0, err
    assert "collector docker: sampling" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "docker" and manifest["status"] == "complete"
    assert [c["name"] for c in manifest["collectors"]] == ["host", "docker"]
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert list(recs["container_id"]) == ids
    assert recs["service"].iloc[0] == "hub" and recs["outcome"].iloc[0] == "ready"
    assert recs["ready_via"].iloc[0] == "healthcheck" and recs["step_index"].iloc[0] == 0
    samples = pd.read_parquet(out / "container_samples.parquet")
    assert len(samples) and {"t_s", "step_index"} <= set(samples.columns)
