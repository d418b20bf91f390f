"""The real Kubernetes test cluster (scripts/test-cluster), as the k8s tests see it.

``scripts/test-cluster up`` builds Kubernetes 1.20 from Debian's source package once
(cached in /var/cache/labcap-k8s) and runs etcd, the control plane and a kubelet on a
private dockerd, all on 127.0.0.1. Exit status 3 means it cannot run on this machine
(not root, no Debian archive): the tests skip and say why.

``Cluster.up(net="netns")`` is the networked variant (LABCAP_K8S_NET=netns): the same cluster
inside a network namespace with no route out, with pod networking (bridge CNI + host-local
IPAM), kube-proxy and a cluster DNS; the machine reaches it only through forwarders on
127.0.0.1 (``Cluster.forward``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "test-cluster"
NSFORWARD = REPO / "scripts" / "test-cluster.d" / "nsforward.py"
CANNOT_RUN = 3  # scripts/test-cluster's exit status when a prerequisite cannot be had
UP_TIMEOUT_S = 3600  # a cold build on 2 busy cores takes several minutes; a warm `up` ~20 s


class ClusterUnavailable(Exception):
    """The cluster cannot run on this machine (the reason is the message)."""


def script(
    *args: str, timeout: float = 120, net: str = "loopback"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABCAP_K8S_NET": net}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def parse_env(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            out[key] = value
    return out


@dataclass
class Cluster:
    """What a test needs: the kubeconfig (token auth, mode 0600), the API server URL,
    the node's name, the local test image, and the API server's off switch."""

    kubeconfig: Path
    server: str
    node: str
    test_image: str
    docker_host: str
    started_here: bool = False
    net: str = "loopback"
    netns: str = ""  # /run/netns/<name> (netns mode)
    node_ip: str = ""
    pod_cidr: str = ""
    service_cidr: str = ""

    @classmethod
    def up(cls, net: str = "loopback") -> Cluster:
        was_up = script("status", net=net).returncode == 0
        r = script("up", timeout=UP_TIMEOUT_S, net=net)
        if r.returncode == CANNOT_RUN:
            raise ClusterUnavailable(_last_line(r.stderr))
        if r.returncode != 0:
            raise RuntimeError(f"scripts/test-cluster up failed:\n{r.stderr[-4000:]}")
        env = parse_env(r.stdout)
        return cls(
            kubeconfig=Path(env["KUBECONFIG"]),
            server=env["LABCAP_K8S_SERVER"],
            node=env["LABCAP_K8S_NODE"],
            test_image=env["LABCAP_K8S_TEST_IMAGE"],
            docker_host=env["LABCAP_K8S_DOCKER_HOST"],
            started_here=not was_up,
            net=net,
            netns=env.get("LABCAP_K8S_NETNS", ""),
            node_ip=env.get("LABCAP_K8S_NODE_IP", ""),
            pod_cidr=env.get("LABCAP_K8S_POD_CIDR", ""),
            service_cidr=env.get("LABCAP_K8S_SERVICE_CIDR", ""),
        )

    def script(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return script(*args, timeout=timeout, net=self.net)

    def down(self) -> None:
        r = script("down", timeout=300, net=self.net)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/test-cluster down failed:\n{r.stderr[-4000:]}")

    # --- fault injection: the API server alone (etcd, controllers and kubelet keep running)

    def stop_apiserver(self) -> None:
        r = script("apiserver", "stop", net=self.net)
        if r.returncode != 0:
            raise RuntimeError(f"apiserver stop failed: {r.stderr.strip()}")

    def start_apiserver(self) -> None:
        r = script("apiserver", "start", net=self.net)
        if r.returncode != 0:
            raise RuntimeError(f"apiserver start failed: {r.stderr.strip()}")

    # --- clients

    def api_client(self):
        """A kubernetes.client.ApiClient for this cluster (admin token from the kubeconfig)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    @contextlib.contextmanager
    def namespace(self, prefix: str = "labcap-test") -> Iterator[str]:
        """A throw-away namespace, ready for pods (its default ServiceAccount token exists);
        deleted afterwards (waits until it is gone, at most 120 s)."""
        core = self.core()
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": name}})
        try:
            wait_for(lambda: _has_sa_token(core, name), 60, f"default ServiceAccount in {name}")
            yield name
        finally:
            delete_namespace(core, name)

    # --- networked mode

    @contextlib.contextmanager
    def forward(self, host: str, port: int) -> Iterator[int]:
        """The machine's 127.0.0.1:<returned port> -> host:port inside the cluster's namespace
        (a Service IP, a pod IP, the node's address), for as long as the block runs."""
        if self.net != "netns":
            raise RuntimeError("forward() needs the networked cluster (net='netns')")
        proc = subprocess.Popen(
            [sys.executable, str(NSFORWARD), self.netns, "0", host, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line.strip().isdigit():
                raise RuntimeError(f"nsforward.py did not start (exit {proc.poll()})")
            yield int(line)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def in_netns(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command in the cluster's namespace (networked mode)."""
        return subprocess.run(
            ["nsenter", f"--net={self.netns}", *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def inside(self, address: str) -> bool:
        """Is address one the namespace holds: loopback, the node's, a pod's or a Service's?"""
        ip = ipaddress.ip_address(address)
        nets = [self.pod_cidr, self.service_cidr, f"{self.node_ip}/32"]
        return ip.is_loopback or any(ip in ipaddress.ip_network(n) for n in nets if n)

    def pod_manifest(
        self, name: str, command: list[str] | None = None, host_network: bool = True, **spec
    ) -> dict:
        """A pod running the local busybox test image (never pulled); hostNetwork unless
        host_network=False (networked mode: a pod address from the bridge CNI)."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "labcap-test"}},
            "spec": {
                "hostNetwork": host_network,
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "main",
                        "image": self.test_image,
                        "imagePullPolicy": "Never",
                        "command": command or ["sleep", "3600"],
                    }
                ],
                **spec,
            },
        }


def _has_sa_token(core, ns: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        return bool(core.read_namespaced_service_account("default", ns).secrets)
    except ApiException:
        return False


def delete_namespace(core, name: str, timeout_s: float = 120) -> None:
    from kubernetes.client.rest import ApiException

    try:
        core.delete_namespace(name, grace_period_seconds=0)
    except ApiException as e:
        if e.status != 404:
            raise
    wait_for(lambda: not _exists(core, name), timeout_s, f"namespace {name} deleted")


def _exists(core, name: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        core.read_namespace(name)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def wait_for(cond, timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll ``cond`` until it returns something truthy; bounded in time and count."""
    for _ in range(int(timeout_s / interval_s) + 1):
        value = cond()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"{what}: not within {timeout_s:g} s")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "scripts/test-cluster cannot run here"


def keep_cluster() -> bool:
    """LABCAP_K8S_KEEP=1 leaves a cluster this session started running (faster re-runs)."""
    return os.environ.get("LABCAP_K8S_KEEP") == "1"
