"""The test cluster itself: a real node becomes Ready and runs a pod; nothing leaves loopback."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest
import urllib3

from tests.k8s.cluster import SCRIPT, script, wait_for


def test_node_ready_and_pod_runs(k8s_cluster):
    core = k8s_cluster.core()
    node = core.read_node(k8s_cluster.node)
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready["Ready"] == "True"
    # --node-ip=127.0.0.1: the kubelet refuses to publish a loopback address, so the node has
    # none at all rather than the machine's own (non-loopback) one
    assert all(a.address.startswith("127.") for a in node.status.addresses or [])
    with k8s_cluster.namespace("labcap-smoke") as ns:
        core.create_namespaced_pod(ns, k8s_cluster.pod_manifest("smoke"))
        pod = wait_for(
            lambda: (p := core.read_namespaced_pod("smoke", ns)).status.phase == "Running" and p,
            120,
            "pod smoke Running",
        )
        assert pod.spec.node_name == k8s_cluster.node
        conds = {c.type: c.status for c in pod.status.conditions}
        assert conds["Ready"] == "True"
        assert pod.status.container_statuses[0].image.endswith("labcap-test/busybox:1")
    assert ns not in {n.metadata.name for n in core.list_namespace().items}


def test_kubeconfig_is_private_and_uses_token_auth(k8s_cluster):
    mode = stat.S_IMODE(os.stat(k8s_cluster.kubeconfig).st_mode)
    assert mode == 0o600
    text = k8s_cluster.kubeconfig.read_text()
    assert "token:" in text and "client-key" not in text
    assert k8s_cluster.server.startswith("https://127.0.0.1:")


def test_env_prints_the_kubeconfig(k8s_cluster):
    r = script("env")
    assert r.returncode == 0
    assert f"export KUBECONFIG={k8s_cluster.kubeconfig}" in r.stdout.splitlines()


def test_up_when_up_is_a_noop(k8s_cluster):
    before = _pids()
    r = script("up", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "already up" in r.stderr
    assert _pids() == before


def test_only_loopback_peers(k8s_cluster):
    """Every socket of every process the cluster started has a loopback peer (or none)."""
    r = script("check-net")
    assert r.returncode == 0, r.stderr


def test_only_loopback_or_namespace_peers(k8s_netns_cluster):
    """The networked cluster: while pods hold connections to each other (via a Service) and
    the machine holds one through a forwarder, every socket of its processes on the machine
    has a loopback peer, and every socket inside its namespace and inside each pod's has a
    peer that is 127.0.0.0/8 or an address inside the namespace (checked here, independently
    of the script's own check-net, which must agree)."""
    cluster = k8s_netns_cluster
    core = cluster.core()
    with cluster.namespace("labcap-peers") as ns:
        web = cluster.pod_manifest("web", ["sh", "-c", "exec nc -ll -p 9000 -e cat"],
                                   host_network=False)  # fmt: skip
        web["metadata"]["labels"] = {"app": "web"}
        core.create_namespaced_pod(ns, web)
        core.create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 9000}]}})  # fmt: skip
        core.create_namespaced_pod(
            ns,
            cluster.pod_manifest(
                "client", ["sh", "-c", "sleep 3600 | nc web 9000"], host_network=False
            ),
        )
        for name in ("web", "client"):
            wait_for(lambda n=name: core.read_namespaced_pod(n, ns).status.phase == "Running",
                     120, f"{name} Running")  # fmt: skip
        svc = core.read_namespaced_service("web", ns).spec.cluster_ip
        with cluster.forward(svc, 9000) as port:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"ping\n")
                assert s.recv(16) == b"ping\n"  # echoed by the pod: the path is real
                peers = _netns_peers(cluster)
                # the pods' long-lived connection through the Service is among them
                assert any(p.startswith(svc) for p in peers), peers
                outside = [p for p in peers if not cluster.inside(p)]
                assert outside == [], f"peers outside the namespace: {outside}"
                r = cluster.script("check-net")
                assert r.returncode == 0, r.stderr


def _netns_peers(cluster) -> list[str]:
    """Peer addresses of every TCP/UDP socket in the namespace and in every pod's."""
    lines = cluster.in_netns("ss", "-Htuna").stdout.splitlines()
    pids = subprocess.run(
        ["docker", "-H", cluster.docker_host, "ps", "-q"], capture_output=True, text=True,
        check=True).stdout.split()  # fmt: skip
    for cid in pids:
        pid = subprocess.run(
            ["docker", "-H", cluster.docker_host, "inspect", "-f", "{{.State.Pid}}", cid],
            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        r = subprocess.run(["nsenter", "-t", pid, "-n", "ss", "-Htuna"], capture_output=True,
                           text=True, check=True)  # fmt: skip
        lines += r.stdout.splitlines()
    peers = []
    for line in lines:
        parts = line.split()
        if len(parts) < 6:
            continue
        host = parts[5].rsplit(":", 1)[0].strip("[]").split("%")[0].removeprefix("::ffff:")
        if host not in ("*", "0.0.0.0", "::", ""):
            peers.append(host)
    return peers


def test_apiserver_stop_and_start(k8s_apiserver_restored):
    cluster = k8s_apiserver_restored
    core = cluster.core()
    core.api_client.configuration.retries = 0
    cluster.stop_apiserver()
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespace(_request_timeout=3)
    cluster.start_apiserver()
    assert cluster.node in {n.metadata.name for n in cluster.core().list_node().items}


def test_not_root_is_a_clear_skip_reason():
    if os.geteuid() != 0:
        pytest.skip("already not root")
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(SCRIPT), "up"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 3
    assert "must run as root" in r.stderr


def _pids() -> dict[str, str]:
    r = script("status")
    return {ln.split(":")[0]: ln for ln in r.stdout.splitlines() if "pid" in ln}


def _state_with_pid_file(tmp_path, monkeypatch, pid: int, age_s: float):
    """A loopback state dir (nothing of it running), made the one ``script`` acts on, whose etcd
    PID file names ``pid`` and was written ``age_s`` seconds ago, as a state dir kept from an
    earlier session looks."""
    state = tmp_path / "st"
    (state / "pids").mkdir(parents=True)
    pid_file = state / "pids" / "etcd.pid"
    pid_file.write_text(f"{pid}\n")
    t = time.time() - age_s
    os.utime(pid_file, (t, t))
    monkeypatch.setenv("LABCAP_K8S_STATE", str(state))
    return state


def test_a_pid_file_from_an_earlier_session_names_no_one(tmp_path, monkeypatch):
    """A state dir outlives its processes (/tmp kept, its daemons gone): a PID file from then
    may name an unrelated process started since. It must not count as the cluster's daemon
    (CI failed: a stale netns state dir counted as "partly running", kept its recorded API
    port, and that port was the loopback cluster's), and `down` must never signal it."""
    if os.geteuid() != 0:
        pytest.skip("scripts/test-cluster needs root")
    other = subprocess.Popen(["sleep", "300"])
    try:
        state = _state_with_pid_file(tmp_path, monkeypatch, other.pid, age_s=3600)
        assert "etcd: stopped" in script("status").stdout
        r = script("down")
        assert r.returncode == 0, r.stderr
        assert other.poll() is None, "down signalled a process that was not the cluster's"
        assert not state.exists()
    finally:
        other.kill()
        other.wait()


def test_a_pid_file_written_after_its_process_started_is_that_daemon(tmp_path, monkeypatch):
    """The other side: the process the PID file was written for counts as running, and
    `down` stops it."""
    if os.geteuid() != 0:
        pytest.skip("scripts/test-cluster needs root")
    daemon = subprocess.Popen(["sleep", "300"])
    try:
        time.sleep(0.1)
        state = _state_with_pid_file(tmp_path, monkeypatch, daemon.pid, age_s=0)
        assert f"etcd: running (pid {daemon.pid})" in script("status").stdout
        r = script("down")
        assert r.returncode == 0, r.stderr
        assert daemon.wait(timeout=30) is not None
        assert not state.exists()
    finally:
        daemon.kill()
        daemon.wait()
