"""Generated profiles are safe by default (issue 9): random secrets only in the secret
file, no default password, non-root containers where the images allow, resource limits
on every container, and a default-deny NetworkPolicy with only the lab's own paths."""

from __future__ import annotations

import re
import stat

import pytest
import yaml

from labcap.deploy_profiles import ProfileSettings, build_profile

K3S = ProfileSettings("k3s", expected_users=40, gpus=2, gpu_sharing="time-slicing", gpu_users=8)
COMPOSE = ProfileSettings("compose", expected_users=20)
WEAK = {"password", "changeme", "admin", "postgres", "secret", "jupyter", "mlflow", "root", ""}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
# the NVIDIA device plugin manages devices on the host: it needs root, by design
ROOT_ALLOWED = {"nvidia-device-plugin-daemonset"}


def _objects(out):
    for path in sorted(out.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "kind" in doc:
                yield path.relative_to(out), doc


@pytest.fixture
def k3s(lab_run, tmp_path):
    out = tmp_path / "k3s"
    build_profile(lab_run, K3S, out)
    return out


def test_k3s_secrets_are_random_and_only_in_secrets_yaml(k3s):
    secrets = [(p, o) for p, o in _objects(k3s) if o["kind"] == "Secret"]
    assert [str(p) for p, _ in secrets] == ["secrets.yaml"]
    assert stat.S_IMODE((k3s / "secrets.yaml").stat().st_mode) == 0o600
    values = {k: v for k, v in secrets[0][1]["stringData"].items() if k != "HUB_ADMIN_USER"}
    assert values and all(len(v) >= 16 and v.lower() not in WEAK for v in values.values())
    for f in k3s.rglob("*"):
        if f.is_file() and f.name != "secrets.yaml":
            text = f.read_text()
            leaked = [k for k, v in values.items() if v in text]
            assert not leaked, f"{f}: holds {leaked}"


def test_k3s_every_container_has_limits_and_runs_as_non_root(k3s):
    pods = [(p, o) for p, o in _objects(k3s) if o["kind"] in POD_KINDS]
    assert len(pods) >= 4
    for path, o in pods:
        spec = o["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            limits = c.get("resources", {}).get("limits", {})
            assert {"cpu", "memory"} <= set(limits), f"{path} {c['name']}: no cpu/memory limit"
            if o["metadata"]["name"] in ROOT_ALLOWED:
                continue
            pod_sc, c_sc = spec.get("securityContext", {}), c.get("securityContext", {})
            non_root = c_sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            uid = c_sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert non_root is True and uid and uid > 0, f"{path} {c['name']}: may run as root"
            assert c_sc.get("allowPrivilegeEscalation") is False, f"{path} {c['name']}"
            assert "ALL" in c_sc.get("capabilities", {}).get("drop", []), f"{path} {c['name']}"


def test_k3s_network_is_default_deny_with_the_labs_paths(k3s):
    policies = [o for _, o in _objects(k3s) if o["kind"] == "NetworkPolicy"]
    namespaces = {o["metadata"]["namespace"] for _, o in _objects(k3s) if o["kind"] == "Deployment"}
    namespaces |= {o["metadata"]["name"] for _, o in _objects(k3s) if o["kind"] == "Namespace"}
    for ns in namespaces:
        deny = [
            p
            for p in policies
            if p["metadata"]["namespace"] == ns
            and p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny, f"namespace {ns} has no default-deny NetworkPolicy"

    def opened(name, port):
        return any(
            p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == name
            and any(
                port in [x.get("port") for x in rule.get("ports", [])]
                for rule in p["spec"].get("ingress", [])
            )
            for p in policies
        )

    # every Service port in the lab namespace is reachable by someone
    for name, port in {("proxy", 8000), ("proxy", 8001), ("hub", 8081)} | {
        ("postgres", 5432),
        ("mlflow", 5000),
    }:
        assert opened(name, port), f"no opening for {name}:{port}"


def test_compose_secrets_only_in_env_with_limits_everywhere(lab_run, tmp_path):
    out = tmp_path / "compose"
    build_profile(lab_run, COMPOSE, out)
    env = dict(
        line.split("=", 1)
        for line in (out / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert stat.S_IMODE((out / ".env").stat().st_mode) == 0o600
    secrets = {k: v for k, v in env.items() if re.search(r"PASSWORD|TOKEN|KEY|SECRET", k)}
    assert secrets and all(len(v) >= 16 and v.lower() not in WEAK for v in secrets.values())
    for f in out.rglob("*"):
        if f.is_file() and f.name != ".env":
            text = f.read_text()
            assert not [k for k, v in secrets.items() if v in text], f
    compose = yaml.safe_load((out / "docker-compose.yml").read_text())
    for name, svc in compose["services"].items():
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= set(limits), f"service {name}: no cpu/memory limit"
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|KEY|SECRET", key):  # a reference to .env, not a value
                assert str(value).startswith("${" + key), f"service {name}: {key} is inline"
