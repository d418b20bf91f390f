"""`labcap run --target k8s`: pod startups recorded while the load runs, and an API server
stopped mid-run leaves a `partial` run with what was gathered (real cluster, real Locust,
real loopback target)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from tests.k8s.cluster import wait_for
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parents[1] / "support"


def _run_cmd(k8s_cluster, ns: str, url: str, out: Path, step_s: int) -> list[str]:
    return [
        sys.executable, "-m", "labcap.cli", "run", "--target", "k8s",
        "--kubeconfig", str(k8s_cluster.kubeconfig), "--namespace", ns,
        "--selector", "app=labcap-test", "--host", url, "--no-calibrate",
        "--scenario", str(SUPPORT / "locustfile_target.py"), "--users", "1,2",
        "--step-duration", f"{step_s}s", "--settle", "1s", "--window", "1s", "--out", str(out),
    ]  # fmt: skip


def _when_load_runs(out: Path) -> None:
    journal = out / "journal.jsonl"
    wait_for(
        lambda: journal.exists() and '"kind":"start"' in journal.read_text(), 60, "load start", 0.1
    )


def test_run_target_k8s_records_pod_startups_per_step(k8s_cluster, tmp_path):
    out = tmp_path / "run"
    core = k8s_cluster.core()
    with k8s_cluster.namespace() as ns, loopback_server("target_server.py") as url:
        proc = subprocess.Popen(
            _run_cmd(k8s_cluster, ns, url, out, 4),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        uids: list[str] = []

        def spawn_during_the_run() -> None:
            _when_load_runs(out)
            time.sleep(0.5)
            body = k8s_cluster.pod_manifest("user-1")
            uids.append(core.create_namespaced_pod(ns, body).metadata.uid)

        spawner = threading.Thread(target=spawn_during_the_run)
        spawner.start()
        try:
            _, err = proc.communicate(timeout=180)
        finally:
            spawner.join()
    assert proc.returncode == 0, err
    assert "collector kubernetes: sampling" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "k8s" and manifest["status"] == "complete", manifest
    assert "kubernetes" in [c["name"] for c in manifest["collectors"]]
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert list(recs["container_id"]) == uids
    assert recs["outcome"].iloc[0] == "ready" and recs["step_index"].iloc[0] == 0
    assert recs["ready_s"].iloc[0] > recs["scheduled_s"].iloc[0] >= 0
    nodes = pd.read_parquet(out / "node_inventory.parquet")
    assert k8s_cluster.node in set(nodes["node"]) and {"t_s", "step_index"} <= set(nodes.columns)
    about = json.loads((out / "kubernetes.json").read_text())
    assert about["namespaces"] == [ns] and "creation_unix" in about["clocks"]
    token = _token(k8s_cluster.kubeconfig)
    for f in out.iterdir():
        assert token not in f.read_bytes().decode("latin-1"), f


def test_apiserver_stopped_mid_run_gives_a_partial_run(k8s_apiserver_restored, tmp_path):
    cluster = k8s_apiserver_restored
    out = tmp_path / "run"
    core = cluster.core()
    with cluster.namespace() as ns, loopback_server("target_server.py") as url:
        proc = subprocess.Popen(
            _run_cmd(cluster, ns, url, out, 20),  # `apiserver stop` alone takes up to 16 s
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        done = threading.Event()
        errors: list[BaseException] = []

        def fault() -> None:
            try:
                _when_load_runs(out)
                core.create_namespaced_pod(ns, cluster.pod_manifest("before-the-fault"))
                wait_for(
                    lambda: (
                        core.read_namespaced_pod("before-the-fault", ns).status.phase == "Running"
                    ),
                    60,
                    "pod running",
                )
                time.sleep(1)  # the watch has delivered it
                cluster.stop_apiserver()
                time.sleep(1)
                cluster.start_apiserver()
            except BaseException as e:  # surfaced below: a failed fault proves nothing
                errors.append(e)
            finally:
                done.set()

        t = threading.Thread(target=fault)
        t.start()
        try:
            _, err = proc.communicate(timeout=240)
        finally:
            t.join()
    assert done.is_set() and not errors, errors
    assert proc.returncode == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "partial", manifest["status_reasons"]
    reasons = " ".join(manifest["status_reasons"])
    assert "lost the Kubernetes API server" in reasons, reasons
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert list(recs["container"]) == ["before-the-fault"]  # what was gathered is kept
    assert recs["outcome"].iloc[0] == "ready"
    windows = pd.read_parquet(out / "windows.parquet")
    assert len(windows) and windows["requests"].sum() > 0  # the load itself went on


def _token(kubeconfig: Path) -> str:
    for line in kubeconfig.read_text().splitlines():
        if "token:" in line:
            return line.split("token:", 1)[1].strip().strip('"')
    raise AssertionError("no token in the test kubeconfig")


def test_wrong_token_is_one_line_exit_2_and_never_printed(k8s_cluster, tmp_path):
    good = _token(k8s_cluster.kubeconfig)
    bad = "wrongtoken" + "x" * 40
    kc = tmp_path / "kubeconfig"
    kc.write_text(k8s_cluster.kubeconfig.read_text().replace(good, bad))
    out = tmp_path / "probe"
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "probe", "startup", "--target", "k8s",
         "--kubeconfig", str(kc), "--image", k8s_cluster.test_image, "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"labcap: error: the Kubernetes API server at {k8s_cluster.server} rejected the "
        "credentials (401 Unauthorized)"
    ]
    assert bad not in r.stderr + r.stdout and good not in r.stderr + r.stdout
    assert not out.exists()
