"""labcap profile --loadgen k8s: Locust master + workers for a cluster, sized and validated."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

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


def test_loadgen_k8s_renders_master_service_and_sized_workers(tmp_path, recorded_run):
    run, out = _run(tmp_path, recorded_run), tmp_path / "k3s"
    r = labcap(
        "profile", str(run), "--platform", "k3s", "--out", str(out),
        "--expected-users", "100", "--loadgen", "k8s",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all((out / "loadgen" / "locust.yaml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "locust-master"), ("Service", "locust-master")} <= kinds
    assert ("Deployment", "locust-worker") in kinds
    worker = next(d for d in docs if d["metadata"]["name"] == "locust-worker")
    master = next(
        d for d in docs if d["kind"] == "Deployment" and "master" in d["metadata"]["name"]
    )
    # workers = expected users x req/s per user (measured) / (70 % of the calibrated
    # 100 req/s per core), rounded up
    per_user = max(
        s["rps"] / s["users"]
        for s in json.loads(labcap("plan", str(run), "--json").stdout)["steps"]
    )
    expected = int(-(-100 * per_user // 70))
    assert worker["spec"]["replicas"] == expected
    args = master["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--expect-workers") + 1] == str(expected)
    assert args[args.index("--host") + 1] == "http://127.0.0.1:5000"
    wargs = worker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert wargs[-3:] == ["--worker", "--master-host", "locust-master"]
    assert "valid against the Kubernetes" in r.stderr
    assert (out / "loadgen" / "Dockerfile.loadgen").read_text().startswith("FROM python")


def test_loadgen_for_a_custom_locustfile_is_refused_and_writes_nothing(tmp_path, recorded_run):
    run, out = _run(tmp_path, recorded_run, scenario="mine.py"), tmp_path / "k3s"
    r = labcap(
        "profile", str(run), "--platform", "k3s", "--out", str(out),
        "--expected-users", "100", "--loadgen", "k8s",
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("labcap: error: --loadgen k8s renders")
    assert not out.exists() or not any(out.iterdir())


def test_loadgen_needs_expected_users(tmp_path, recorded_run):
    run = _run(tmp_path, recorded_run)
    r = labcap("profile", str(run), "--platform", "k3s", "--out", str(tmp_path / "o"),
               "--loadgen", "k8s")  # fmt: skip
    assert r.returncode == 2 and "--loadgen k8s needs --expected-users" in r.stderr
