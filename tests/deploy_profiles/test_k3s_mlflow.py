"""MLflow for users in the K3s profile, as rendered: user pods get MLFLOW_TRACKING_URI naming
the in-cluster Service, the server answers that Host header, and the NetworkPolicies open
exactly that path. The running path (a user's kernel logging a run) is in
tests/k8s/test_profile_deploy.py.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import yaml

from labcap.deploy_profiles import ProfileSettings, build_profile

SETTINGS = ProfileSettings("k3s", expected_users=20)


@pytest.fixture
def k3s(lab_run, tmp_path):
    out = tmp_path / "k3s"
    build_profile(lab_run, SETTINGS, out)
    objects = {}
    for path in sorted((out / "manifests").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def _tracking_uri(objects):
    config = objects[("ConfigMap", "hub-config")]["data"]["jupyterhub_config.py"]
    found = re.search(r'^c\.KubeSpawner\.environment = \{"MLFLOW_TRACKING_URI": "([^"]+)"\}$',
                      config, re.M)  # fmt: skip
    assert found, "user pods get no MLFLOW_TRACKING_URI"
    return found[1]


def test_user_pods_get_the_in_cluster_mlflow_service(k3s):
    uri = urlsplit(_tracking_uri(k3s))
    service = k3s[("Service", "mlflow")]
    ns = service["metadata"]["namespace"]
    assert uri.scheme == "http" and uri.hostname == f"mlflow.{ns}.svc.cluster.local"
    assert uri.port in [p["port"] for p in service["spec"]["ports"]]


def test_mlflow_answers_the_service_name_and_only_lab_names(k3s):
    # MLflow >= 3.5 refuses Host headers outside --allowed-hosts: read with MLflow's own matcher
    security = pytest.importorskip("mlflow.server.security_utils")
    pod = k3s[("Deployment", "mlflow")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in pod["env"]}
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert security.is_allowed_host_header(allowed, urlsplit(_tracking_uri(k3s)).netloc)
    for probe_host in ("10.244.0.7:5000", "127.0.0.1:5000"):  # kubelet probes, port-forward
        assert security.is_allowed_host_header(allowed, probe_host)
    assert not security.is_allowed_host_header(allowed, "mlflow.example.org:5000")


def test_network_policies_open_user_pods_to_mlflow_and_no_public_route(k3s):
    ns = k3s[("Service", "mlflow")]["metadata"]["namespace"]
    users = k3s[("NetworkPolicy", "user-servers")]
    user_ns = users["metadata"]["namespace"]
    to_mlflow = [
        rule
        for rule in users["spec"]["egress"]
        for peer in rule.get("to", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        == "mlflow"
    ]
    assert to_mlflow and {"protocol": "TCP", "port": 5000} in to_mlflow[0]["ports"]
    ingress = k3s[("NetworkPolicy", "mlflow")]["spec"]["ingress"]
    assert any(
        p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == user_ns
        for rule in ingress
        for p in rule["from"]
    )
    # MLflow has no login: the Ingress routes only the proxy (which asks the hub), never MLflow
    backends = {
        path["backend"]["service"]["name"]
        for rule in k3s[("Ingress", "ailab")]["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"proxy-public"} and ns == k3s[("Ingress", "ailab")]["metadata"]["namespace"]
