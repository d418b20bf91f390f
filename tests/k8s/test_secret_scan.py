"""Secrets never leak from a K8s probe run (issue 9): the kubeconfig's token and client
keys appear in no artefact — run directory (Parquet bytes too), report, stdout, stderr —
and `labcap cleanup` finds no namespace left behind. (Reliability's test, kept beside the
cluster fixture it needs.)"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import yaml

from labcap.measure.cleanup import MANAGED_BY_LABEL


def _kubeconfig_secrets(path) -> dict[str, bytes]:
    cfg = yaml.safe_load(path.read_text())
    out = {}
    for u in cfg.get("users", []):
        user = u.get("user") or {}
        for key in ("token", "client-key-data", "client-certificate-data", "password"):
            if user.get(key):
                out[f"{u.get('name')}.{key}"] = str(user[key]).encode()
                if key.endswith("-data"):  # the decoded PEM's body, too
                    pem = base64.b64decode(user[key]).decode()
                    body = "".join(pem.split("-----")[2].split())
                    out[f"{u.get('name')}.{key} (decoded)"] = body[:64].encode()
    return out


def test_no_kubeconfig_secret_in_a_k8s_probe_runs_artefacts(k8s_cluster, tmp_path):
    secrets = _kubeconfig_secrets(k8s_cluster.kubeconfig)
    assert secrets, "the test kubeconfig holds no credential to look for"
    out = tmp_path / "probe"
    cmd = [
        sys.executable, "-m", "labcap.cli", "probe", "startup", "--target", "k8s",
        "--kubeconfig", str(k8s_cluster.kubeconfig), "--image", k8s_cluster.test_image,
        "--command", "sleep 3600", "--pull-policy", "Never", "--concurrency", "1,2",
        "--out", str(out), "--json",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rep = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", str(out)], capture_output=True, timeout=120
    )
    assert rep.returncode == 0, rep.stderr.decode()
    artefacts = {"stdout": r.stdout, "stderr": r.stderr, "report stderr": rep.stderr}
    for f in out.rglob("*"):
        if f.is_file():
            artefacts[str(f.relative_to(tmp_path))] = f.read_bytes()
    assert any(name.endswith(".parquet") for name in artefacts)
    leaks = [
        f"{where}: {label}"
        for where, data in artefacts.items()
        for label, secret in secrets.items()
        if secret in data or base64.b64encode(secret).rstrip(b"=") in data
    ]
    assert not leaks, leaks
    # and the probe left no namespace: cleanup finds nothing to delete
    c = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "cleanup", "--kubeconfig", str(k8s_cluster.kubeconfig)]
        + ["--runs-dir", str(tmp_path), "--dry-run", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"DOCKER_HOST": "unix:///nonexistent", "PATH": "/usr/bin:/bin"},
    )
    assert c.returncode == 0, c.stderr
    namespaces = [f for f in json.loads(c.stdout) if f["kind"] == "namespace"]
    assert all(f["action"] != "would remove" for f in namespaces), (MANAGED_BY_LABEL, namespaces)


def test_cleanup_deletes_a_crashed_runs_namespace_and_only_it(k8s_cluster, tmp_path):
    from labcap.measure.cleanup import MANAGED_BY, RUN_ID_LABEL

    core = k8s_cluster.core()
    names = {"labcap-crashed-x1": "x1", "labcap-other-x2": "x2"}
    for name, run_id in names.items():
        labels = {MANAGED_BY_LABEL: MANAGED_BY, RUN_ID_LABEL: run_id}
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
    try:
        c = subprocess.run(
            [sys.executable, "-m", "labcap.cli", "cleanup", "--run", "x1", "--json"]
            + ["--kubeconfig", str(k8s_cluster.kubeconfig), "--runs-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={"DOCKER_HOST": "unix:///nonexistent", "PATH": "/usr/bin:/bin"},
        )
        assert c.returncode == 0, c.stderr
        found = [f for f in json.loads(c.stdout) if f["kind"] == "namespace"]
        assert [(f["name"], f["action"]) for f in found] == [("labcap-crashed-x1", "removed")]
        if _exists(core, "labcap-crashed-x1"):  # deletion takes a moment: it is on its way
            assert core.read_namespace("labcap-crashed-x1").status.phase == "Terminating"
        assert core.read_namespace("labcap-other-x2").status.phase == "Active"
    finally:
        for name in names:
            if _exists(core, name):
                core.delete_namespace(name)


def _exists(core, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        core.read_namespace(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True
