"""GPU queueing from the real test cluster: a user server asking for nvidia.com/gpu on a
cluster without GPUs is held by the scheduler (a real FailedScheduling event); `labcap plan`
splits its spawn time into waiting-for-GPU and starting, and the gpu-scheduling-conflicts
and scheduling-conflicts rules fire from it (issue 20)."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from tests.k8s.test_run_target import _run_cmd, _when_load_runs
from tests.support.cli import labcap
from tests.support.servers import loopback_server


def test_a_user_server_waiting_for_a_gpu_feeds_the_gpu_queue_rules(k8s_cluster, tmp_path):
    out = tmp_path / "run"
    core = k8s_cluster.core()
    with k8s_cluster.namespace() as ns, loopback_server("target_server.py") as url:
        proc = subprocess.Popen(
            _run_cmd(k8s_cluster, ns, url, out, 6),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        def spawn_during_the_run() -> None:
            _when_load_runs(out)
            time.sleep(0.5)
            cpu = k8s_cluster.pod_manifest("jupyter-cpu")
            gpu = k8s_cluster.pod_manifest("jupyter-gpu")
            gpu["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
            core.create_namespaced_pod(ns, cpu)
            core.create_namespaced_pod(ns, gpu)

        spawner = threading.Thread(target=spawn_during_the_run)
        spawner.start()
        try:
            _, err = proc.communicate(timeout=180)
        finally:
            spawner.join()
    assert proc.returncode == 0, err

    plan = labcap("plan", str(out), "--json", "--expected-users", "2")
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    sched = data["scheduling"]
    assert sched["pods_failed_scheduling"] == 1 and "nvidia.com/gpu" in sched["resources"]
    (wait,) = sched["gpu_waits"]
    assert wait["pod"] == "jupyter-gpu" and wait["scheduled"] is False
    assert wait["starting_s"] is None and wait["waited_for_gpu_s"] > 5  # the run's last ~10 s
    assert sched["gpu_queue_wait_p95_ms"] == round(1000 * wait["waited_for_gpu_s"], 1)
    rec = data["recommendation"]
    assert rec["measurements"]["gpu_queue_wait_p95_ms"] > 5000
    fired = {r["rule"] for r in rec["reasons"]}
    assert {"gpu-scheduling-conflicts", "scheduling-conflicts"} <= fired, fired
    text = labcap("plan", str(out), "--expected-users", "2")
    assert "gpu queue: 1 user server(s) waited for nvidia.com/gpu" in text.stdout
    assert "jupyter-gpu waited >= " in text.stdout and "never started" in text.stdout
