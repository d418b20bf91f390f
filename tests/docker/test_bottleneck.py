"""A hub-bound run on a real engine: the hub (a real container with a 0.05-core CPU limit
serving every request through a CPU-bound CGI) is throttled by its cgroup, the Docker
collector reads the throttling, and plan and the K3s profile name the hub and say that more
nodes will not help (issue 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from labcap.collectors.docker import COMPOSE_PROJECT, COMPOSE_SERVICE
from tests.docker.engine import TEST_IMAGE, TEST_LABEL, free_port
from tests.support.cli import labcap

SUPPORT = Path(__file__).parents[1] / "support"
# a CGI that burns CPU in the hub's own cgroup: each request is ~20k shell loop turns
CGI = (
    "#!/bin/sh\ni=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\n"
    "echo Content-Type: text/plain\necho\necho ok\n"
)
SCRIPT = (
    "busybox mkdir -p /www/cgi-bin && cat > /www/cgi-bin/work <<'EOF'\n" + CGI + "EOF\n"
    "busybox chmod +x /www/cgi-bin/work && exec httpd -f -p $PORT -h /www\n"
)


def _start_cpu_limited_hub(client, port: int) -> str:
    cid = client.api.create_container(
        TEST_IMAGE,
        command=["sh", "-c", SCRIPT],
        environment={"PORT": str(port)},
        labels={COMPOSE_PROJECT: "neck", COMPOSE_SERVICE: "hub", TEST_LABEL: "neck"},
        host_config=client.api.create_host_config(network_mode="host", nano_cpus=50_000_000),
    )["Id"]
    client.api.start(cid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/work", timeout=5) as r:
                if r.read().strip() == b"ok":
                    return cid
        except OSError:
            time.sleep(0.2)
    raise AssertionError(client.api.logs(cid).decode(errors="replace"))


# a worker in a 16 MiB memory cgroup (no swap) that keeps asking a subshell for 48 MiB: the
# kernel OOM-kills the subshell, the container lives on and its cgroup counts the kills
# Each round a subshell grows past the 16 MiB limit and is OOM-killed. It raises its own
# oom_score_adj first, so the kernel picks it (and its pipe), never the looping shell: left
# equal, the kernel sometimes picked the shell and the container was gone after 2 s.
HUNGRY = (
    "while :; do (echo 1000 > /proc/self/oom_score_adj; "
    "x=$(busybox head -c 50000000 /dev/zero | busybox tr '\\0' a); echo ${#x}); "
    "sleep 0.5; done"
)


def _start_memory_starved_worker(client) -> str:
    cid = client.api.create_container(
        TEST_IMAGE,
        command=["sh", "-c", HUNGRY],
        labels={COMPOSE_PROJECT: "neck", COMPOSE_SERVICE: "worker", TEST_LABEL: "neck"},
        host_config=client.api.create_host_config(
            network_mode="none", mem_limit="16m", memswap_limit="16m"
        ),
    )["Id"]
    client.api.start(cid)
    return cid


def _start_crashing_service(client) -> str:
    """A service that exits 1 after a second and that the engine restarts (on-failure)."""
    cid = client.api.create_container(
        TEST_IMAGE,
        command=["sh", "-c", "sleep 1; exit 1"],
        labels={COMPOSE_PROJECT: "neck", COMPOSE_SERVICE: "flaky", TEST_LABEL: "neck"},
        host_config=client.api.create_host_config(
            network_mode="none", restart_policy={"Name": "on-failure", "MaximumRetryCount": 20}
        ),
    )["Id"]
    client.api.start(cid)
    return cid


def test_a_hub_bound_run_names_the_hub_and_more_nodes_do_not_help(engine, tmp_path):
    client = engine.docker
    port = free_port()
    cid = _start_cpu_limited_hub(client, port)
    worker = _start_memory_starved_worker(client)
    out = tmp_path / "run"
    flaky: list[str] = []

    def crash_during_the_run() -> None:  # its restarts then fall inside the steps
        journal = out / "journal.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if journal.exists() and '"kind":"start"' in journal.read_text():
                flaky.append(_start_crashing_service(client))
                return
            time.sleep(0.1)

    crasher = threading.Thread(target=crash_during_the_run)
    crasher.start()
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "labcap.cli", "run", "--target", "docker",
                "--compose-project", "neck", "--host", f"http://127.0.0.1:{port}",
                "--scenario", str(SUPPORT / "locustfile_target.py"), "--users", "1,4",
                "--step-duration", "5s", "--settle", "1s", "--window", "1s", "--no-calibrate",
                "--slo", "max_ms=600000", "--out", str(out),
            ],
            env={
                **os.environ, "DOCKER_HOST": engine.host,
                "LABCAP_TEST_PATH": "/cgi-bin/work", "LABCAP_TEST_NAME": "hub.api",
            },
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        client.api.remove_container(cid, force=True)
        client.api.remove_container(worker, force=True)
        crasher.join()
        for c in flaky:
            client.api.remove_container(c, force=True)
    assert run.returncode == 0, run.stderr
    import pandas as pd

    samples = pd.read_parquet(out / "container_samples.parquet")
    hub = samples[samples["service"] == "hub"]
    assert set(hub["cpu_limit_cores"].round(3)) == {0.05}  # read from the cgroup
    assert hub["cpu_throttled_periods"].max() > hub["cpu_throttled_periods"].min()
    cols = ["step_index", "cpu_pct", "cpu_periods", "cpu_throttled_periods"]
    print("hub samples:\n" + hub[cols].to_string())  # the figures, for the record

    plan = labcap("plan", str(out), "--json", "--expected-users", "40")
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    neck = data["bottleneck"]
    assert neck["component"] == "hub" and neck["scales_out"] is False, neck
    assert neck["basis"] == "resources" and neck["at_users"] == 1, neck
    assert neck["evidence"][0].startswith("hub (") and "CPU-throttled" in neck["evidence"][0]
    rec = data["recommendation"]
    assert rec["measurements"]["cpu_throttled_pct"] > 20
    assert rec["measurements"]["oom_kills"] > 0  # the worker's, from its cgroup
    fired = {r["rule"] for r in rec["reasons"]}
    assert rec["measurements"]["container_restarts"] > 0  # the flaky service's
    # the target answers on loopback: this machine is the lab's host, its CPU and I/O wait count
    assert rec["measurements"]["host_cpu_pct"] is not None
    assert rec["measurements"]["iowait_pct"] is not None
    assert {
        "cpu-contention", "memory-contention", "containers-restarting",
        "bottleneck-does-not-scale-out",
    } <= fired, fired  # fmt: skip
    assert neck["component"] == "hub"  # the worker is no lab component: evidence, not a neck
    assert "multi-node-needed" not in fired
    text = labcap("plan", str(out), "--expected-users", "40")
    print(text.stdout)
    assert "bottleneck: hub saturates first" in text.stdout
    assert "more nodes will not help" in text.stdout

    profile = labcap(
        "profile", str(out), "--platform", "k3s", "--out", str(tmp_path / "k3s"),
        "--expected-users", "40", "--json",
    )  # fmt: skip
    assert profile.returncode == 0, profile.stderr
    nodes = {d["key"]: d for d in json.loads(profile.stdout)["decisions"]}["cluster.nodes"]
    assert nodes["value"] == 1, nodes
    assert "more nodes will not help: one hub serves every user" in nodes["rule"]
    assert "hub-bound" in nodes["source"] and "CPU-throttled" in nodes["source"]
