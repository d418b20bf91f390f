"""`labcap probe startup --target k8s` on the real test cluster: the table and JSON, the
throw-away namespace deleted afterwards (also on SIGTERM), and a Docker probe and a K8s
probe of the same image compared side by side by `labcap report A B`."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from labcap.clients.kube import connect
from labcap.collectors.base import StartupRecord
from labcap.collectors.kubernetes import MANAGED_BY
from labcap.measure.probes.docker import StartupProbeSettings, run_startup_probe
from labcap.measure.probes.k8s import NAMESPACE_PREFIX, K8sProbeSettings, run_k8s_startup_probe
from labcap.planner.capacity import plan_capacity
from labcap.reports.compare import measured_values
from labcap.store import RunDir
from tests.k8s.cluster import wait_for


def _probe_cmd(k8s_cluster, out: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "labcap.cli", "probe", "startup", "--target", "k8s",
        "--kubeconfig", str(k8s_cluster.kubeconfig), "--image", k8s_cluster.test_image,
        "--command", "sleep 3600", "--pull-policy", "Never", "--out", str(out), *args,
    ]  # fmt: skip


def _probe_namespaces(core) -> list[str]:
    return [
        n.metadata.name
        for n in core.list_namespace(label_selector=f"{MANAGED_BY}=labcap").items
        if n.metadata.name.startswith(NAMESPACE_PREFIX) and n.status.phase != "Terminating"
    ]


def test_probe_k8s_prints_phase_percentiles_and_deletes_its_namespace(k8s_cluster, tmp_path):
    out = tmp_path / "probe"
    r = subprocess.run(
        _probe_cmd(k8s_cluster, out, "--concurrency", "1,3", "--repeat", "2", "--json"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["status"] == "complete", result["reasons"]
    rows = result["startup"]
    assert [(x["concurrency"], x["containers"], x["ready"]) for x in rows] == [(1, 2, 2), (3, 6, 6)]
    for row in rows:
        phases = row["phases"]
        assert list(phases) == [
            "create_call", "scheduled", "initialized", "started", "running",
            "containers_ready", "ready",
        ]  # fmt: skip
        for q in phases.values():
            assert q["p50_ms"] <= q["p95_ms"] <= q["p99_ms"] <= q["max_ms"]
        assert phases["scheduled"]["p50_ms"] <= phases["ready"]["p50_ms"]
        assert row["ready_p95_ms"] == phases["ready"]["p95_ms"]
    manifest = json.loads((out / "manifest.json").read_text())
    ns = manifest["probe"]["namespace"]
    assert ns == f"{NAMESPACE_PREFIX}{manifest['probe']['run_id']}"
    assert manifest["target"] == "k8s" and "clocks" in manifest
    core = k8s_cluster.core()
    assert ns not in {n.metadata.name for n in core.list_namespace().items}
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert len(recs) == 8 and (recs["outcome"] == "ready").all()
    assert (recs["requested_s"] < 0).all()  # the create call was sent before the pod appeared
    windows = pd.read_parquet(out / "windows.parquet")
    assert {"startup.ready", "startup.scheduled", "startup.create_call"} <= set(windows["endpoint"])
    # the human table: one line per phase and concurrency
    table = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", str(out), "-o", str(tmp_path / "r.html")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr


def test_probe_k8s_sigterm_deletes_the_namespace(k8s_cluster, tmp_path):
    out = tmp_path / "probe"
    core = k8s_cluster.core()
    before = set(_probe_namespaces(core))
    proc = subprocess.Popen(
        _probe_cmd(k8s_cluster, out, "--concurrency", ",".join(["2"] * 30)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        ns = wait_for(lambda: set(_probe_namespaces(core)) - before, 60, "the probe's namespace")
        (ns,) = ns
        wait_for(lambda: core.list_namespaced_pod(ns).items, 60, "the probe's first pods")
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "deleting the probe's namespace" in err
    names = {n.metadata.name: n for n in core.list_namespace().items}
    assert ns not in names or names[ns].status.phase == "Terminating"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "partial"
    assert any("interrupted" in r for r in manifest["status_reasons"])


def test_docker_and_k8s_probes_of_one_image_compare_side_by_side(k8s_cluster, tmp_path):
    import docker

    levels = (1, 4)
    client = docker.DockerClient(base_url=k8s_cluster.docker_host, max_pool_size=16)
    try:
        dres = run_startup_probe(
            StartupProbeSettings(
                image=k8s_cluster.test_image, concurrency=levels, command=("sleep", "3600")
            ),
            tmp_path / "docker",
            client=client,
        )
    finally:
        client.close()
    target = connect(str(k8s_cluster.kubeconfig))
    kres = run_k8s_startup_probe(
        K8sProbeSettings(
            image=k8s_cluster.test_image,
            concurrency=levels,
            command=("sleep", "3600"),
            pull_policy="Never",
        ),
        tmp_path / "k8s",
        target=target,
    )
    assert dres.status == kres.status == "complete", (dres.reasons, kres.reasons)
    # the shared columns, column for column: same names, same order, same types
    shared = list(StartupRecord.__dataclass_fields__)
    d = pd.read_parquet(tmp_path / "docker" / "startup_records.parquet")
    k = pd.read_parquet(tmp_path / "k8s" / "startup_records.parquet")
    assert list(k.columns[: len(shared)]) == shared == list(d.columns[: len(shared)])
    for col in shared:
        if d[col].notna().any() and k[col].notna().any():
            assert d[col].dtype == k[col].dtype, col
    for frame in (d, k):
        assert (frame["outcome"] == "ready").all() and frame["ready_s"].notna().all()
    # the same endpoints in the windows, so the report lines them up
    for res in (dres, kres):
        values = measured_values(plan_capacity(RunDir(res.path)), RunDir(res.path))
        assert values["startup_p95_s"] is not None and not math.isnan(values["startup_p95_s"])
    html = tmp_path / "compare.html"
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", str(dres.path), str(kres.path),
         "-o", str(html)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = html.read_text()
    assert str(dres.path.name) in text and str(kres.path.name) in text
