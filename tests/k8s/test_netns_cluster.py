"""The networked test cluster (scripts/test-cluster, LABCAP_K8S_NET=netns): real pod networking
inside a network namespace the test cluster creates, with no route out.

Pods get addresses from the bridge CNI (Debian's containernetworking-plugins, host-local
IPAM), Services work through kube-proxy (iptables mode, built from the same Kubernetes source)
and Service names resolve through the cluster DNS (dnsmasq fed from the API: a substitute for
CoreDNS, which Debian does not package). The machine reaches inside only through forwarders
listening on its 127.0.0.1.
"""

from __future__ import annotations

import socket

from tests.k8s.cluster import wait_for

WEB = [
    "sh",
    "-c",
    "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www",
]
HTTP_GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port}"


def _running(core, ns: str, name: str):
    return wait_for(
        lambda: (p := core.read_namespaced_pod(name, ns)).status.phase == "Running" and p,
        120,
        f"pod {name} Running",
    )


def _exec(cluster, ns: str, pod: str, script: str) -> str:
    from kubernetes.stream import stream

    core = cluster.core()
    return stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        command=["sh", "-c", script],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _request_timeout=30,
    )


def _web_and_client(cluster, core, ns: str, client_cmd: list[str] | None = None):
    web = cluster.pod_manifest("web", WEB, host_network=False)
    web["metadata"]["labels"] = {"app": "web"}
    core.create_namespaced_pod(ns, web)
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    core.create_namespaced_pod(ns, cluster.pod_manifest("client", client_cmd, host_network=False))
    return _running(core, ns, "web"), _running(core, ns, "client")


def test_pods_talk_through_a_service_by_name(k8s_netns_cluster):
    cluster = k8s_netns_cluster
    core = cluster.core()
    with cluster.namespace("labcap-net") as ns:
        web, client = _web_and_client(cluster, core, ns)
        assert cluster.inside(web.status.pod_ip) and not web.spec.host_network
        assert web.status.pod_ip != client.status.pod_ip
        svc = core.read_namespaced_service("web", ns).spec.cluster_ip
        # pod -> pod, pod -> Service IP (kube-proxy), pod -> Service name (cluster DNS)
        for host, port in ((web.status.pod_ip, 8080), (svc, 80), ("web", 80)):
            out = wait_for(
                lambda h=host, p=port: (
                    "hello-from-web"
                    in _exec(cluster, ns, "client", HTTP_GET.format(host=h, port=p))
                ),
                30,
                f"client -> {host}:{port}",
            )
            assert out
        lookup = _exec(cluster, ns, "client", f"nslookup web.{ns}.svc.cluster.local")
        assert svc in lookup
        # the machine, through a forwarder on its loopback, to the Service inside
        with cluster.forward(svc, 80) as port:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                body = b"".join(iter(lambda: s.recv(4096), b""))
            assert b"hello-from-web" in body


def test_pods_reach_the_api_server_through_the_kubernetes_service(k8s_netns_cluster):
    """What KubeSpawner in a hub pod needs: kubernetes.default.svc answers TLS."""
    cluster = k8s_netns_cluster
    core = cluster.core()
    with cluster.namespace("labcap-net") as ns:
        core.create_namespaced_pod(ns, cluster.pod_manifest("c", host_network=False))
        _running(core, ns, "c")
        # a TLS ClientHello's first bytes: the API server answers with a TLS alert (0x15)
        out = _exec(
            cluster,
            ns,
            "c",
            "printf '\\026\\003\\001\\000\\005hello'"
            " | nc -w 5 kubernetes.default.svc.cluster.local 443 | head -c 1 | od -An -tx1",
        )
        assert out.strip() in ("15", "16")


def test_the_namespace_has_no_route_out(k8s_netns_cluster):
    cluster = k8s_netns_cluster
    routes = cluster.in_netns("ip", "-4", "route", "show").stdout.splitlines()
    # the pods' range on the bridge, the Services' range on lo (for kube-proxy's DNAT): no more
    assert sorted(r.split()[0] for r in routes) == sorted([cluster.pod_cidr, cluster.service_cidr])
    assert not [r for r in routes if " via " in r or r.startswith("default")]
    # a routing-table question only (no packet is sent): TEST-NET-1 is unreachable
    r = cluster.in_netns("ip", "route", "get", "192.0.2.1")
    assert r.returncode != 0 and "unreachable" in r.stderr.lower()
    links = cluster.in_netns("ip", "-o", "link", "show").stdout
    names = {ln.split(": ")[1].split("@")[0] for ln in links.splitlines()}
    assert names <= {"lo", "cni0"} | {n for n in names if n.startswith("veth")}
