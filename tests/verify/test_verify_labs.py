"""`labcap verify` against real reference labs: a faithful copy verifies clean, every damage
is found and named, and the CLI keeps its exit codes, JSON, JUnit and secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from labcap.verify import (
    FAIL,
    FIX,
    INCONCLUSIVE,
    PASS,
    READY,
    ROLL_BACK,
    SKIPPED,
    VerifySettings,
    resolve_deployment,
    run_verify,
)
from tests.verify.conftest import BLOCKED_USER, Labs, SeededLab

pytestmark = pytest.mark.lab

USERS = ("labcap-verify-1", BLOCKED_USER)


def side(label: str, lab: SeededLab, **kw):
    return resolve_deployment(label, str(lab.workdir), env={}, **kw)


def test_faithful_copy_verifies_clean(labs: Labs) -> None:
    result = run_verify(
        side("old", labs.old),
        side("new", labs.faithful),
        VerifySettings(checks=("data", "logins", "gpu"), users=USERS),
        progress=print,
    )
    print("\n".join(result.lines()))
    by_name = {c.name: c for c in result.checks}
    assert [d for c in result.checks for d in c.differences] == []
    assert by_name["data"].status == PASS
    assert by_name["data"].details["mlflow"]["runs"] == {"old": 6, "new": 6}
    assert by_name["data"].details["files"][0]["files"]["new"] == 12
    assert by_name["logins"].status == PASS
    assert by_name["logins"].details["ok_new"] == 2
    # no GPU here and none planned: skipped with the reason, never passed
    assert by_name["gpu"].status == SKIPPED
    assert "no GPU expected" in by_name["gpu"].summary
    assert result.verdict == READY and result.exit_code == 0


def test_damaged_copy_names_every_damage(labs: Labs) -> None:
    result = run_verify(
        side("old", labs.old),
        side("new", labs.damaged),
        VerifySettings(checks=("data", "logins"), users=USERS),
        progress=print,
    )
    print("\n".join(result.lines()))
    found = {(d.kind, d.subject) for c in result.checks for d in c.differences}
    kinds = sorted(k for k, _ in found)
    # the changed value is also a changed point of the metric's history
    assert kinds == [
        "changed-metric", "changed-metric-history", "login-failed", "missing-file", "missing-run",
    ], found  # fmt: skip
    subjects = " | ".join(s for _, s in found)
    assert "exp-1/run-2" in subjects  # the missing run
    assert "exp-0/run-1" in subjects and "metric acc" in subjects  # the changed metric
    assert "alice/project/file-2.txt in" in subjects  # the missing file
    assert f"user {BLOCKED_USER}" in subjects  # the user who cannot log in
    metric = next(d for c in result.checks for d in c.differences if d.kind == "changed-metric")
    assert metric.old[0] == pytest.approx(0.51) and metric.new[0] == pytest.approx(0.99)
    assert result.verdict == FIX and result.exit_code == 1
    assert result.failed_checks == ["data", "logins"]


def test_no_user_served_on_new_means_roll_back(labs: Labs) -> None:
    result = run_verify(
        side("old", labs.old),
        side("new", labs.damaged),
        VerifySettings(checks=("logins",), users=(BLOCKED_USER,)),
    )
    (logins,) = result.checks
    assert logins.status == FAIL and logins.critical
    assert result.verdict == ROLL_BACK and result.exit_code == 1


def test_gpu_plan_without_a_visible_gpu_fails(labs: Labs, tmp_path) -> None:
    """The probe really runs NVML in a kernel of the lab's user server; this machine has no
    GPU, so a plan that expects one must fail (where a GPU exists, tests/gpu cover it)."""
    if _has_local_gpu():
        pytest.skip("this machine has a GPU: the server would see it")
    target = tmp_path / "new.yaml"
    target.write_text(
        f"hub_url: {labs.faithful.endpoints.hub_url}\n"
        "gpu: {gpus: 1, sharing: time-slicing, time_slicing_replicas: 4}\n"
    )
    new = resolve_deployment(
        "new", str(target), env={"LABCAP_NEW_HUB_PASSWORD": labs.faithful.endpoints.hub_password}
    )
    result = run_verify(
        side("old", labs.old), new, VerifySettings(checks=("gpu",), users=("labcap-verify-gpu",))
    )
    (gpu,) = result.checks
    assert gpu.status == FAIL, gpu.summary
    assert [d.kind for d in gpu.differences] == ["gpu-not-visible"]
    assert "NVML" in gpu.differences[0].detail or "pynvml" in gpu.differences[0].detail
    assert result.verdict == FIX


def _has_local_gpu() -> bool:
    from labcap.verify.gpu import run_probe_locally

    return bool(run_probe_locally().get("device_count"))


def verify_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "labcap.cli", "verify", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_cli_damaged_exit_json_junit_and_no_secrets(labs: Labs, tmp_path) -> None:
    out, junit = tmp_path / "out", tmp_path / "verify.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCAP_")}
    proc = verify_cli(
        *("--old", str(labs.old.workdir), "--new", str(labs.damaged.workdir)),
        *("--checks", "data,logins", "--sample-users", f"labcap-verify-1,{BLOCKED_USER}"),
        *("--json", "--junit", str(junit), "--out", str(out)),
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == FIX and data["failed_checks"] == ["data", "logins"]
    assert "labcap: verify logins:" in proc.stderr  # progress on stderr, not stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "2"
    failure = suite.find("testcase[@name='data']/failure")
    assert "missing-run" in failure.text and "changed-metric" in failure.text
    written = (out / "verify.json").read_text()
    assert json.loads(written)["verdict"] == FIX
    for lab in (labs.old, labs.damaged):
        for secret in (lab.endpoints.hub_password, lab.endpoints.api_token):
            for text in (proc.stdout, proc.stderr, written, junit.read_text()):
                assert secret not in text


def test_cli_faithful_exit_zero_text(labs: Labs) -> None:
    proc = verify_cli(
        *("--old", str(labs.old.workdir), "--new", str(labs.faithful.workdir)),
        *("--checks", "data", "--checksums", "5"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{READY}: data pass")


def test_capacity_runs_the_same_load_on_both_and_gates_them(labs: Labs, tmp_path) -> None:
    """A real short step load on old and faithful at once; the gate's outcome becomes the
    check's status (which outcome depends on this shared machine's noise, so not asserted)."""
    from labcap.store import RunDir
    from labcap.verify import CapacitySettings

    settings = VerifySettings(
        checks=("capacity",),
        capacity=CapacitySettings(scenario="mlflow", users=(1, 2), step_duration_s=12, window_s=1),
        out=tmp_path,
    )
    result = run_verify(side("old", labs.old), side("new", labs.faithful), settings, print)
    (capacity,) = result.checks
    print(capacity.summary)
    gate = capacity.details["gate"]
    for label in ("old", "new"):
        assert RunDir.open(tmp_path / f"capacity-{label}").manifest["status"] == "complete"
    assert {c["users"] for c in gate["comparisons"]} == {1, 2}
    expected = {"pass": PASS, "regression": FAIL, "inconclusive": INCONCLUSIVE}[gate["outcome"]]
    assert capacity.status == expected
    assert "max users at SLO" in capacity.summary


def test_new_mlflow_down_means_roll_back(labs: Labs) -> None:
    """Nothing listens on loopback port 9: the new tracking server is unreachable."""
    new = resolve_deployment(
        "new", labs.faithful.endpoints.hub_url, mlflow_url="http://127.0.0.1:9", env={}
    )
    result = run_verify(side("old", labs.old), new, VerifySettings(checks=("data",)))
    (data,) = result.checks
    assert data.status == INCONCLUSIVE and data.critical
    assert result.verdict == ROLL_BACK


def test_artifact_listing_from_the_store_equals_the_api(labs: Labs) -> None:
    from labcap.verify.mlflow_data import MlflowReader

    def listings(source: str) -> dict[str, dict]:
        reader = MlflowReader(labs.old.endpoints.mlflow_url, artifact_source=source)
        snap = reader.snapshot(lambda _m: None, "old")
        assert snap.errors == [] and snap.artifact_sources[source] == len(snap.runs)
        return {r.run_id: r.artifacts for r in snap.runs if r.experiment.startswith("exp-")}

    via_api, via_store = listings("api"), listings("store")
    assert len(via_api) == 6 and all(len(a) == 3 for a in via_api.values())  # 2 files + model/
    assert via_store == via_api
