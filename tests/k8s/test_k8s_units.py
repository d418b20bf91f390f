"""Kubernetes collector pieces that need no cluster: parsing, inventory arithmetic,
kubeconfig resolution, and the one-line errors for a bad kubeconfig or a dead server
(a refused loopback port: a real socket, nothing mocked)."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import pytest

from labcap.clients.kube import K3S_KUBECONFIG, connect, resolve_kubeconfig
from labcap.collectors.base import StartupRecord
from labcap.collectors.kubernetes import (
    PodStartupRecord,
    insufficient_resources,
    node_inventory,
    parse_k8s_time,
    pod_requests,
)
from labcap.errors import LabcapError
from tests.support.cli import labcap
from tests.support.servers import loopback_server

TOKEN = "s3cr3t-t0ken-abcdefghijklmnopqrstuvwxyz-0123456789"


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connecting is refused


def write_kubeconfig(path: Path, server: str, context: str = "lab") -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path


def test_pod_records_have_the_docker_columns_first_in_the_same_order_and_types():
    docker = [(f.name, f.type) for f in dataclasses.fields(StartupRecord)]
    k8s = [(f.name, f.type) for f in dataclasses.fields(PodStartupRecord)]
    assert k8s[: len(docker)] == docker
    extra = {name for name, _ in k8s[len(docker) :]}
    assert {"scheduled_s", "initialized_s", "containers_ready_s", "ready_cond_s"} <= extra


def test_failed_scheduling_reasons_name_the_missing_resources():
    msg = (
        "0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient nvidia.com/gpu, "
        "1 Insufficient nvidia.com/mig-1g.5gb, 2 Insufficient memory."
    )
    assert insufficient_resources(msg) == (
        "cpu",
        "memory",
        "nvidia.com/gpu",
        "nvidia.com/mig-1g.5gb",
    )
    assert insufficient_resources("0/1 nodes are available: 1 node(s) had taint") == ()


def test_requests_count_init_containers_as_the_scheduler_does():
    spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            {"resources": {"requests": {"cpu": "250m", "nvidia.com/gpu": "1"}}},
        ],
        "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "128Mi"}}}],
        "overhead": {"cpu": "100m"},
    }
    assert pod_requests(spec) == {"cpu": 2.1, "memory": 2**30, "nvidia.com/gpu": 1.0}


def test_node_inventory_sums_requests_of_running_pods_per_node():
    nodes = [
        {
            "metadata": {"name": "n1"},
            "status": {
                "allocatable": {
                    "cpu": "4", "memory": "8Gi", "pods": "110",
                    "nvidia.com/gpu": "2", "nvidia.com/mig-1g.5gb": "7",
                },
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
        {"metadata": {"name": "n2"}, "status": {"allocatable": {"cpu": "2"}}},
    ]  # fmt: skip

    def pod(node, phase, **req):
        return {
            "spec": {"nodeName": node, "containers": [{"resources": {"requests": req}}]},
            "status": {"phase": phase},
        }

    pods = [
        pod("n1", "Running", cpu="1500m", memory="1Gi", **{"nvidia.com/gpu": "1"}),
        pod("n1", "Pending", **{"nvidia.com/mig-1g.5gb": "2"}),
        pod("n1", "Succeeded", cpu="3"),  # finished: holds nothing
        pod(None, "Pending", cpu="8"),  # unscheduled: on no node
    ]
    rows = {r.node: r for r in node_inventory(nodes, pods, 1000.0)}
    n1, n2 = rows["n1"], rows["n2"]
    assert (n1.cpu_allocatable_m, n1.cpu_requested_m) == (4000, 1500)
    assert (n1.mem_allocatable_bytes, n1.mem_requested_bytes) == (8 * 2**30, 2**30)
    assert (n1.gpu_allocatable, n1.gpu_requested, n1.pods, n1.ready) == (2, 1, 2, True)
    assert json.loads(n1.extended)["nvidia.com/mig-1g.5gb"] == [7.0, 2.0]
    assert (n2.cpu_requested_m, n2.pods, n2.ready) == (0, 0, False)


def test_condition_times_parse_with_and_without_fractions():
    assert parse_k8s_time("2026-01-01T00:00:01Z") == 1767225601.0
    assert parse_k8s_time("2026-01-01T00:00:01.250000Z") == 1767225601.25
    assert parse_k8s_time(None) is None and parse_k8s_time("garbage") is None


def test_kubeconfig_resolution_order(tmp_path, monkeypatch):
    a = write_kubeconfig(tmp_path / "a", "https://127.0.0.1:1")
    b = write_kubeconfig(tmp_path / "b", "https://127.0.0.1:2")
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{b}"}
    assert resolve_kubeconfig(str(a), env) == str(a)  # --kubeconfig first
    assert resolve_kubeconfig(None, env) == str(b)  # then $KUBECONFIG (existing entries)
    with pytest.raises(LabcapError, match="KUBECONFIG names no existing file"):
        resolve_kubeconfig(None, {"KUBECONFIG": str(tmp_path / "missing")})
    with pytest.raises(LabcapError, match="does not exist"):
        resolve_kubeconfig(str(tmp_path / "nope"), env)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kube/config
    if not Path(K3S_KUBECONFIG).exists():
        with pytest.raises(LabcapError, match="no kubeconfig"):
            resolve_kubeconfig(None, {})


def test_connect_refused_context_missing_and_garbage_are_one_line(tmp_path):
    port = _refused_port()
    kc = write_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}")
    with pytest.raises(LabcapError) as e:
        connect(str(kc), timeout_s=3)
    assert str(e.value) == (
        f"the Kubernetes API server at https://127.0.0.1:{port} is unreachable (connection refused)"
    )
    with pytest.raises(
        LabcapError, match=r"context 'other' is not in kubeconfig .* \(contexts: lab\)"
    ):  # noqa: E501
        connect(str(kc), "other")
    (tmp_path / "junk").write_text("not: [a kubeconfig")
    with pytest.raises(LabcapError, match="is not usable"):
        connect(str(tmp_path / "junk"))


@pytest.mark.parametrize("problem", ["refused", "missing-file", "wrong-context"])
def test_run_target_k8s_bad_kubeconfig_is_one_line_exit_2_before_the_load(tmp_path, problem):
    kc = write_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{_refused_port()}")
    args = ["--kubeconfig", str(kc)]
    if problem == "missing-file":
        args = ["--kubeconfig", str(tmp_path / "absent")]
    elif problem == "wrong-context":
        args += ["--context", "nope"]
    out = tmp_path / "run"
    with loopback_server("target_server.py") as url:
        r = labcap(
            "run", "--target", "k8s", *args, "--namespace", "jhub", "--host", url,
            "--scenario", "mlflow", "--users", "1", "--step-duration", "2s",
            "--out", str(out),
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labcap: error: "), r.stderr
    assert TOKEN not in r.stderr + r.stdout
    assert not out.exists()  # nothing started, nothing half-written


def test_probe_target_k8s_unreachable_is_one_line_exit_2(tmp_path):
    kc = write_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{_refused_port()}")
    out = tmp_path / "probe"
    r = labcap(
        "probe", "startup", "--target", "k8s", "--image", "busybox", "--out", str(out),
        env={"KUBECONFIG": str(kc)},
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"labcap: error: the Kubernetes API server at {_server(kc)} is unreachable "
        "(connection refused)"
    ]
    assert TOKEN not in r.stderr + r.stdout and not out.exists()


def test_k8s_options_need_target_k8s(tmp_path):
    with loopback_server("target_server.py") as url:
        r = labcap("run", "--host", url, "--namespace", "x", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "need --target k8s" in r.stderr


def _server(kc: Path) -> str:
    return json.loads(kc.read_text())["clusters"][0]["cluster"]["server"]
