"""labcap profile --loadgen k8s: a Job of `labcap worker` Pods for a cluster, sized and
validated against the Kubernetes schemas."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from labcap import __version__
from tests.support.cli import labcap

STEPS = {5: {"mlflow.log_batch": [20.0] * 400}, 10: {"mlflow.log_batch": [30.0] * 800}}


def _run(tmp_path: Path, recorded_run, scenario: str = "mlflow") -> Path:
    run = recorded_run(tmp_path / "run", STEPS, slos=["p95_ms=500"])
    m = json.loads((run / "manifest.json").read_text())
    m["scenario"] = {"name": scenario}
    m["hosts"] = {"default": "http://127.0.0.1:5000", "mlflow": "http://127.0.0.1:5000"}
    m["calibration"] = {"ceiling_rps_per_core": 100.0}
    (run / "manifest.json").write_text(json.dumps(m))
    return run


MASTER = "10.0.0.5:5557"


def _profile(run: Path, out: Path, *extra: str):
    return labcap(
        "profile", str(run), "--platform", "k3s", "--out", str(out),
        "--expected-users", "100", "--loadgen", "k8s", *extra,
    )  # fmt: skip


def test_loadgen_k8s_renders_a_job_of_labcap_workers_sized_from_calibration(tmp_path, recorded_run):
    run, out = _run(tmp_path, recorded_run), tmp_path / "k3s"
    r = _profile(run, out, "--loadgen-master", MASTER)
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all((out / "loadgen" / "workers.yaml").read_text()))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Namespace", "labcap-loadgen"),
        ("Job", "labcap-worker"),
    ]  # no Locust master in the cluster: the user's `labcap run` is the master
    job = docs[1]
    # workers = expected users x req/s per user (measured) / (70 % of the calibrated
    # 100 req/s per core), rounded up
    per_user = max(
        s["rps"] / s["users"]
        for s in json.loads(labcap("plan", str(run), "--json").stdout)["steps"]
    )
    expected = int(-(-100 * per_user // 70))
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == expected
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == f"labcap/labcap:{__version__}"
    assert c["command"] == ["labcap"]
    assert c["args"][:3] == ["worker", "--master", MASTER]
    secret = next(e for e in c["env"] if e["name"] == "LABCAP_WORKER_SECRET")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "labcap-worker", "key": "secret"}
    assert "hostNetwork" not in pod
    assert "valid against the Kubernetes" in r.stderr
    dockerfile = (out / "loadgen" / "Dockerfile.labcap").read_text()
    assert f"labcap-{__version__}-py3-none-any.whl" in dockerfile
    assert f"labcap=={__version__}" not in dockerfile  # never from a registry
    readme = (out / "loadgen" / "README.md").read_text()
    assert f"--expect-workers {expected}" in readme and "--master-bind 0.0.0.0:5557" in readme


def test_loadgen_worker_pods_can_use_the_host_network(tmp_path, recorded_run):
    run, out = _run(tmp_path, recorded_run), tmp_path / "k3s"
    r = _profile(run, out, "--loadgen-master", MASTER, "--loadgen-host-network")
    assert r.returncode == 0, r.stderr
    job = list(yaml.safe_load_all((out / "loadgen" / "workers.yaml").read_text()))[1]
    assert job["spec"]["template"]["spec"]["hostNetwork"] is True


def test_loadgen_for_a_custom_locustfile_renders_too(tmp_path, recorded_run):
    # the master hands its locustfile to the workers: no ConfigMap, no refusal
    run, out = _run(tmp_path, recorded_run, scenario="mine.py"), tmp_path / "k3s"
    r = _profile(run, out, "--loadgen-master", MASTER)
    assert r.returncode == 0, r.stderr
    assert "--scenario mine.py" in (out / "loadgen" / "README.md").read_text()


def test_loadgen_needs_the_master_address(tmp_path, recorded_run):
    run, out = _run(tmp_path, recorded_run), tmp_path / "k3s"
    r = _profile(run, out)
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith("labcap: error: --loadgen k8s needs --loadgen-master HOST:PORT")
    )
    assert not out.exists() or not any(out.iterdir())
    r = _profile(run, out, "--loadgen-master", "10.0.0.5")
    assert r.returncode == 2 and "--loadgen-master '10.0.0.5': use HOST:PORT" in r.stderr


def test_rendered_workers_fail_schema_validation_when_broken():
    """The schema check is real: a Job with a bad field is refused before writing."""
    import pytest

    from labcap.deploy_profiles import validate as v
    from labcap.deploy_profiles.validate import ProfileValidationError

    bad = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
           "spec": {"parallelism": "two", "template": {"spec": {"containers": []}}}}  # fmt: skip
    with pytest.raises(ProfileValidationError):
        v.validate_k8s([("loadgen/workers.yaml", bad)])


def test_loadgen_needs_expected_users(tmp_path, recorded_run):
    run = _run(tmp_path, recorded_run)
    r = labcap("profile", str(run), "--platform", "k3s", "--out", str(tmp_path / "o"),
               "--loadgen", "k8s")  # fmt: skip
    assert r.returncode == 2 and "--loadgen k8s needs --expected-users" in r.stderr
