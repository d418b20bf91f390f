"""`labcap probe startup` against a real engine, then `labcap plan` and `labcap report`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from labcap.collectors.docker import DockerCollector, DockerSettings
from labcap.measure.probes.docker import StartupProbeSettings, run_startup_probe
from labcap.planner.capacity import plan_run
from tests.docker.engine import TEST_IMAGE, PrivateEngine, build_test_image, remove_all
from tests.support.cli import labcap


def test_probe_cli_end_to_end_then_plan_and_report(engine, tmp_path):
    out = tmp_path / "storm"
    r = labcap(
        "probe", "startup", "--image", TEST_IMAGE, "--port", "auto", "--env", "START_DELAY=0.2",
        "--concurrency", "1,3", "--repeat", "1", "--interval", "0.5s", "--out", str(out),
        env={"DOCKER_HOST": engine.host},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["concurrency", "started", "ready"]
    assert [ln.split()[:3] for ln in lines[1:3]] == [["1", "1", "1"], ["3", "3", "3"]]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["target"] == "docker"
    assert manifest["scenario"]["name"] == "probe-startup"
    assert [s["users"] for s in manifest["load"]["steps"]] == [1, 3]
    assert manifest["slos"] == [  # stored as records (schema 2)
        {"endpoint": "startup.ready", "metric": "max_ms", "threshold": 30000.0},
        {"endpoint": None, "metric": "error_pct", "threshold": 0.0},
    ]
    assert [c["step_index"] for c in manifest["contention"]] == [0, 1]
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert len(recs) == 4 and (recs["outcome"] == "ready").all()
    assert list(recs.groupby("step_index").size()) == [1, 3]
    assert (recs["ready_s"] >= 0.2).all() and (recs["requested_s"] < 0).all()
    assert (recs["created_s"] <= recs["started_s"]).all()
    assert (recs["started_s"] <= recs["running_s"]).all()
    assert (recs["running_s"] <= recs["ready_s"]).all()

    plan = labcap("plan", str(out), "--json", env={"DOCKER_HOST": engine.host})
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert [s["verdict"] for s in data["steps"]] == ["pass", "pass"]
    assert data["capacity"]["max_users_at_slo"] == 3
    ready = [e for e in data["endpoints"] if e["endpoint"] == "startup.ready"]
    assert [e["requests"] for e in ready] == [1, 3]
    assert all(200 <= e["p50_ms"] < 30000 for e in ready)

    rep = labcap("report", str(out), env={"DOCKER_HOST": engine.host})
    assert rep.returncode == 0, rep.stderr
    html = Path(rep.stdout.strip()).read_text()
    assert "startup.ready" in html and "Container startup" in html


def test_an_image_that_does_not_exist_fails_the_probe_clearly(engine, tmp_path):
    out = tmp_path / "missing"
    r = labcap(
        "probe", "startup", "--image", "labcap-test/no-such-image:1", "--concurrency", "2",
        "--out", str(out), "--json", env={"DOCKER_HOST": engine.host},
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    result = json.loads(r.stdout)
    assert result["status"] == "failed"
    assert result["startup"][0]["outcomes"] == {"pull-failed": 2}
    assert "not found locally" in r.stderr and "labcap never pulls" in r.stderr
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert list(recs["outcome"]) == ["pull-failed", "pull-failed"]
    assert plan_run(str(out)).status == "failed"


def test_exited_and_not_ready_containers_are_reported_per_step(engine, tmp_path):
    settings = StartupProbeSettings(
        image=TEST_IMAGE, concurrency=(2,), command=("sh", "-c", "exit 7"), timeout_s=10
    )
    result = run_startup_probe(settings, tmp_path / "exits", client=engine.docker)
    assert result.rows[0].outcomes == {"exited": 2}
    failures = pd.read_parquet(tmp_path / "exits" / "failures.parquet")
    assert list(failures["reason"]) == ["ContainerNotReady: exited: exited with code 7"]
    assert list(failures["count"]) == [2]

    slow = StartupProbeSettings(
        image=TEST_IMAGE, concurrency=(1,), port="auto", env=("START_DELAY=30",), timeout_s=1
    )
    result = run_startup_probe(slow, tmp_path / "slow", client=engine.docker)
    assert result.rows[0].outcomes == {"timeout": 1}
    assert result.status == "complete"  # the probe ran; the step fails its SLO
    plan = plan_run(str(tmp_path / "slow"))
    assert plan.steps[0].verdict == "fail"
    # the one startup never got ready: the failed request binds (error_pct); startup.ready
    # had no ready time to judge, which is not enough data, not a breach (issue 20)
    assert [c.endpoint for c in plan.binding] == ["*"]
    ready = next(c for c in plan.steps[0].checks if c.endpoint == "startup.ready")
    assert ready.status == "not-enough-data" and ready.samples == 0


def test_sigint_removes_every_container_and_keeps_a_partial_run(engine, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "labcap.cli", "probe", "startup", "--image", TEST_IMAGE,
            "--port", "auto", "--env", "START_DELAY=60", "--concurrency", "3",
            "--timeout", "60s", "--out", str(out),
        ],
        env={**os.environ, "DOCKER_HOST": engine.host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = engine.docker.api.containers(filters={"label": "labcap.probe"})
        if len(running) == 3:
            break
        time.sleep(0.1)
    assert len(running) == 3
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert engine.docker.api.containers(all=True) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "partial"
    assert any("interrupted" in r for r in manifest["status_reasons"])
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert len(recs) == 3 and set(recs["outcome"]) == {"timeout"}
    assert set(recs["reason"]) == {"interrupted before it was ready"}


def test_engine_stopped_mid_run_gives_a_partial_run_with_the_data_so_far(tmp_path):
    """A second private engine, stopped while the probe's second step waits."""
    eng = PrivateEngine()
    eng.start()
    try:
        client = eng.client()
        build_test_image(client)
        settings = StartupProbeSettings(
            image=TEST_IMAGE,
            concurrency=(1, 2, 2),
            port="auto",
            env=("START_DELAY=0.2",),
            timeout_s=5,
            interval_s=0.5,
        )
        probe_done: dict = {}
        out = tmp_path / "lost"

        def probe() -> None:
            probe_done["result"] = run_startup_probe(settings, out, client=client)

        watcher = DockerCollector(DockerSettings(interval_s=0.2), client=eng.client())
        watcher.start(None)
        worker = threading.Thread(target=probe)
        worker.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # step 2 has started
            names = [c["Names"][0] for c in client.api.containers(all=True)]
            if any("-1-0-" in n for n in names):
                break
            time.sleep(0.02)
        eng.stop()
        worker.join(timeout=60)
        time.sleep(0.5)  # the engine is gone now: its event stream has ended
        watcher.stop()
        warnings = watcher.status().warnings
        assert watcher.status().available
        assert any(w.startswith("lost the Docker engine") for w in warnings), warnings
        seen = watcher.tables()
        assert len(seen["startup_records"]) >= 3 and len(seen["container_samples"])
        result = probe_done["result"]
        assert result.status == "partial"
        assert any("lost the Docker engine" in r for r in result.reasons), result.reasons
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "partial"
        assert any("lost the Docker engine" in r for r in manifest["status_reasons"])
        assert any("could not remove" in r for r in manifest["status_reasons"])
        recs = pd.read_parquet(out / "startup_records.parquet")
        assert (recs[recs["step_index"] == 0]["outcome"] == "ready").all()
        plan = plan_run(str(out))
        assert plan.status == "partial" and plan.steps[0].verdict == "pass"
        assert plan.steps[2].verdict in ("not-run", "no-data")  # when the loss was seen
    finally:
        eng.start()  # containers the dead engine could not remove: clear them
        remove_all(eng.client())
        eng.destroy()
