"""Server-side validation of K3s profiles (`labcap profile --validate-server`) on the real
test cluster: a rendered profile passes, a hand-broken manifest is rejected in one line,
kinds Kubernetes 1.20 does not serve are reported as such, and nothing is persisted."""

from __future__ import annotations

import json

import pytest
import yaml

from labcap.deploy_profiles.dryrun import TEMP_NS_PREFIX, validate_on_server
from labcap.deploy_profiles.validate import ProfileValidationError
from tests.deploy_profiles.conftest import LAB_SLOS, LAB_STEPS
from tests.k8s.cluster import wait_for
from tests.support.cli import labcap


def _no_leftovers(core):
    """No profile namespace was created for real; temporary ones are deleted (or going)."""

    def settled():
        names = {n.metadata.name: n for n in core.list_namespace().items}
        assert "ailab" not in names and "ailab-users" not in names
        return all(
            n.metadata.deletion_timestamp is not None or n.status.phase == "Terminating"
            for name, n in names.items()
            if name.startswith(TEMP_NS_PREFIX)
        )

    wait_for(settled, 30, "temporary dry-run namespaces deleted")


def test_rendered_k3s_profile_passes_on_the_server(k8s_cluster, tmp_path, recorded_run):
    run = recorded_run(tmp_path / "lab-run", LAB_STEPS, slos=LAB_SLOS)
    out = tmp_path / "deploy"
    proc = labcap(
        "profile", run, "--platform", "k3s", "--out", out, "--expected-users", "80",
        "--gpus", "2", "--gpu-sharing", "time-slicing", "--gpu-users", "10",
        "--validate-server", "--kubeconfig", k8s_cluster.kubeconfig, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("server-side dry-run"))
    assert f"at {k8s_cluster.server} (Kubernetes v1.20" in line
    objects = sum(
        1
        for f in [*sorted((out / "manifests").glob("*.yaml")), out / "secrets.yaml"]
        for d in yaml.safe_load_all(f.read_text())
        if d
    )
    assert f": {objects} objects accepted" in line
    assert "temporary namespaces (deleted): " in line  # ailab does not exist on the cluster
    assert line in json.loads((out / "sizing.json").read_text())["validation"]
    string_data = yaml.safe_load((out / "secrets.yaml").read_text())["stringData"]
    # HUB_ADMIN_USER is a user name (default "admin"), kept beside the secrets, not one
    secret_values = [v for k, v in string_data.items() if k != "HUB_ADMIN_USER"]
    assert len(secret_values) >= 3  # the passwords, keys and tokens are still checked
    for value in filter(None, secret_values):
        assert value not in proc.stdout and value not in proc.stderr
    _no_leftovers(k8s_cluster.core())


def _deployment(name: str, **container) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ailab"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox", **container}]},
            },
        },
    }


def test_a_hand_broken_manifest_is_rejected_and_nothing_persists(k8s_cluster):
    broken = _deployment("web", image="")  # both are fine for the offline schema check
    broken["spec"]["replicas"] = -1
    objects = [
        ("manifests/00-namespaces.yaml", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "ailab"}}),
        ("manifests/40-ok.yaml", _deployment("fine")),
        ("manifests/50-web.yaml", broken),
    ]  # fmt: skip
    with pytest.raises(ProfileValidationError) as err:
        validate_on_server(objects, str(k8s_cluster.kubeconfig))
    msg = str(err.value)
    assert "\n" not in msg
    assert "rejected 1 object(s): manifests/50-web.yaml: Deployment ailab/web:" in msg
    assert "spec.replicas" in msg and "containers[0].image: Required value" in msg
    assert "40-ok" not in msg
    core = k8s_cluster.core()
    _no_leftovers(core)
    from kubernetes import client

    apps = client.AppsV1Api(k8s_cluster.api_client())
    assert not [
        d
        for d in apps.list_deployment_for_all_namespaces().items
        if d.metadata.name in ("web", "fine")
    ]


def test_kinds_the_server_does_not_serve_are_reported_not_rejected(k8s_cluster):
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "hub", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "hub"}}},
    }
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cull", "namespace": "default"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}],
            }}}},
        },
    }  # fmt: skip
    existing = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    check = validate_on_server(
        [("a.yaml", pdb), ("b.yaml", cron), ("c.yaml", existing)], str(k8s_cluster.kubeconfig)
    )
    assert check.version.startswith("v1.20")
    assert check.accepted == ["c.yaml: Namespace default"]
    assert check.unserved == ["PodDisruptionBudget policy/v1 (a.yaml)", "CronJob batch/v1 (b.yaml)"]
    assert check.temp_namespaces == {}
    assert f"not served by this server (version {check.version})" in check.summary()


def test_unreachable_server_is_one_clear_line_and_nothing_written(
    k8s_cluster, tmp_path, recorded_run
):
    run = recorded_run(tmp_path / "lab-run", LAB_STEPS, slos=LAB_SLOS)
    bad = tmp_path / "kubeconfig"
    text = k8s_cluster.kubeconfig.read_text().replace(k8s_cluster.server, "https://127.0.0.1:1")
    bad.write_text(text)
    bad.chmod(0o600)
    out = tmp_path / "deploy"
    proc = labcap(
        "profile", run, "--platform", "k3s", "--out", out, "--expected-users", "20",
        "--validate-server", "--kubeconfig", bad, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "https://127.0.0.1:1" in proc.stderr and "unreachable" in proc.stderr
    assert not out.exists()


def test_validate_server_needs_k3s(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "lab-run", LAB_STEPS, slos=LAB_SLOS)
    proc = labcap(
        "profile", run, "--platform", "compose", "--out", tmp_path / "c", "--validate-server"
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "labcap: error: --validate-server needs --platform k3s (Compose has no API server)\n"
    )
