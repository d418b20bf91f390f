"""A real Kubernetes 1.20 cluster for the k8s tests (no mocks): ``k8s_cluster``.

Package-scoped: the cluster runs only while tests/k8s runs, so its kubelet, API server and
etcd do not load the machine under the timing-sensitive tests that follow (a gate test on
real runs failed in CI with the cluster still up behind it). ``scripts/test-cluster up``
builds Kubernetes from Debian's source package on first use (several minutes; cached in
/var/cache/labcap-k8s, later sessions start in ~20 s) and runs etcd, kube-apiserver (TLS +
token auth on 127.0.0.1), controller-manager, scheduler and a kubelet on a private dockerd.
The tests skip ONLY when the script says it cannot run here (exit 3: not root, no Debian
archive), with its reason; any other failure is an error. At the end of the package the
cluster is taken down again, unless it was already up when the session began (someone
else's) or LABCAP_K8S_KEEP=1.

Usage::

    def test_x(k8s_cluster):
        core = k8s_cluster.core()                      # kubernetes.client.CoreV1Api
        with k8s_cluster.namespace() as ns:            # throw-away, deleted afterwards
            core.create_namespaced_pod(ns, k8s_cluster.pod_manifest("p1"))
        k8s_cluster.kubeconfig, k8s_cluster.server     # token kubeconfig, https://127.0.0.1:6443
        k8s_cluster.stop_apiserver(); k8s_cluster.start_apiserver()
"""

from __future__ import annotations

import pytest

from tests.k8s.cluster import Cluster, ClusterUnavailable, keep_cluster


@pytest.fixture(scope="package")
def k8s_cluster():
    try:
        cluster = Cluster.up()
    except ClusterUnavailable as e:
        pytest.skip(f"k8s tests: {e}")
    yield cluster
    # A test that stopped the API server must not leave it stopped for the next one.
    cluster.start_apiserver()
    if cluster.started_here and not keep_cluster():
        cluster.down()


@pytest.fixture(scope="package")
def k8s_netns_cluster():
    """The networked variant (scripts/test-cluster with LABCAP_K8S_NET=netns): pods have
    addresses, Services work through kube-proxy, names resolve; all inside a namespace with
    no route out. Its own state dir, so it runs beside the loopback cluster."""
    try:
        cluster = Cluster.up(net="netns")
    except ClusterUnavailable as e:
        pytest.skip(f"k8s tests (networked): {e}")
    yield cluster
    cluster.start_apiserver()
    if cluster.started_here and not keep_cluster():
        cluster.down()


@pytest.fixture
def k8s_apiserver_restored(k8s_cluster):
    """For fault tests that stop the API server: it is running again afterwards."""
    yield k8s_cluster
    k8s_cluster.start_apiserver()
