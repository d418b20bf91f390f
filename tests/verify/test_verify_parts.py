"""The parts of `labcap verify` that need no lab: file trees, the MLflow comparison, the GPU
judgement, the capacity gate on synthetic runs, verdicts, JUnit and bad input."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labcap.errors import LabcapError
from labcap.verify import (
    FAIL,
    FIX,
    INCONCLUSIVE,
    PASS,
    READY,
    ROLL_BACK,
    SKIPPED,
    CheckResult,
    ChecksumPolicy,
    Difference,
    VerifyResult,
    capacity_from_runs,
    parse_checks,
    read_credentials,
    resolve_deployment,
    sample_users,
)
from labcap.verify.files import compare_trees
from labcap.verify.gpu import judge_gpu
from labcap.verify.junit_report import junit_xml
from labcap.verify.mlflow_data import MlflowSnapshot, RunRecord, compare_mlflow
from tests.support.cli import invoke
from tests.support.runs import synthetic_run

# ------------------------------------------------------------------ file trees


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


FILES = {"alice/a.txt": "alpha", "alice/deep/b.bin": "bravo!", "bob/c.txt": "charlie"}


def test_identical_trees_have_no_difference(tmp_path):
    old, new = _tree(tmp_path / "old", FILES), _tree(tmp_path / "new", FILES)
    diffs, details = compare_trees(old, new)
    assert diffs == []
    assert details["files"] == {"old": 3, "new": 3}
    assert details["bytes"]["old"] == details["bytes"]["new"] == 18
    assert details["checksums"]["files_hashed"] == 3


def test_every_kind_of_tree_difference_is_named(tmp_path):
    old = _tree(tmp_path / "old", {**FILES, "bob/gone.txt": "x"})
    changed = {**FILES, "alice/a.txt": "ALPHA", "bob/c.txt": "charlie!!", "bob/new.txt": "n"}
    new = _tree(tmp_path / "new", changed)
    os.symlink("a.txt", old / "alice/link")
    os.symlink("deep/b.bin", new / "alice/link")
    diffs, _ = compare_trees(old, new)
    got = {(d.kind, d.subject.split(" in ")[0]) for d in diffs}
    assert got == {
        ("changed-checksum", "alice/a.txt"),  # same size, other bytes: only sha256 sees it
        ("changed-size", "bob/c.txt"),
        ("missing-file", "bob/gone.txt"),
        ("extra-file", "bob/new.txt"),
        ("changed-link", "alice/link"),
    }


def test_checksum_policy_none_and_sample(tmp_path):
    old = _tree(tmp_path / "old", {f"u/f{i}.txt": "same" for i in range(20)})
    new = _tree(tmp_path / "new", {f"u/f{i}.txt": "same" for i in range(20)})
    (new / "u/f7.txt").write_text("SAME")
    none, details = compare_trees(old, new, ChecksumPolicy.parse("none"))
    assert none == [] and details["checksums"]["files_hashed"] == 0
    _, details = compare_trees(old, new, ChecksumPolicy.parse("5"))
    assert details["checksums"]["files_hashed"] == 5
    everything, _ = compare_trees(old, new, ChecksumPolicy.parse("all"))
    assert [d.kind for d in everything] == ["changed-checksum"]
    with pytest.raises(LabcapError, match="--checksums"):
        ChecksumPolicy.parse("some")


def test_ignored_top_level_entries_are_left_out(tmp_path):
    old = _tree(tmp_path / "old", {**FILES, "labcap-verify-1/.ipython/x": "1"})
    new = _tree(tmp_path / "new", FILES)
    diffs, details = compare_trees(old, new, ignore=("labcap-*",))
    assert diffs == [] and details["files"] == {"old": 3, "new": 3}


# ------------------------------------------------------------------ MLflow comparison


def _run(run_id: str, exp: str = "exp", name: str = "r", **kw) -> RunRecord:
    info = {
        "status": "FINISHED",
        "start_time": 1,
        "end_time": 2,
        "lifecycle_stage": "active",
        "run_name": name,
        "user_id": "u",
    }
    return RunRecord(
        run_id,
        exp,
        {**info, **kw.pop("info", {})},
        kw.pop("params", {"lr": "0.1"}),
        kw.pop("metrics", {"loss": (0.5, 3, 10)}),
        kw.pop("tags", {"t": "1"}),
        kw.pop("artifacts", {"model": (True, None), "model/w.bin": (False, 100)}),
    )


def _snap(*runs: RunRecord, experiments=("exp",)) -> MlflowSnapshot:
    return MlflowSnapshot(
        {e: {"name": e, "lifecycle_stage": "active", "tags": []} for e in experiments},
        list(runs),
        [],
    )


def test_mlflow_runs_match_by_id_when_ids_are_shared():
    old = _snap(_run("a"), _run("b", name="r2"))
    new = _snap(_run("a", params={"lr": "0.2"}), _run("b", name="r2", tags={}))
    diffs, details = compare_mlflow(old, new)
    assert details["matched_runs_by"] == "run id"
    assert sorted(d.kind for d in diffs) == ["changed-param", "missing-tag"]


def test_mlflow_runs_match_by_name_and_start_after_an_api_copy():
    old = _snap(_run("a"), _run("b", name="r2"), experiments=("exp", "gone"))
    new = _snap(
        _run("x", metrics={"loss": (0.6, 3, 10)}),
        _run("y", name="r2", artifacts={"model": (True, None), "model/w.bin": (False, 99)}),
        _run("z", name="r3"),
    )
    diffs, details = compare_mlflow(old, new)
    assert details["matched_runs_by"] == "experiment, run name and start time"
    kinds = sorted(d.kind for d in diffs)
    assert kinds == ["changed-artifact", "changed-metric", "extra-run", "missing-experiment"]
    metric = next(d for d in diffs if d.kind == "changed-metric")
    assert metric.old == (0.5, 3, 10) and metric.new == (0.6, 3, 10)


def test_nan_metrics_are_equal():
    old = _snap(_run("a", metrics={"m": ("NaN", 0, 1)}))
    new = _snap(_run("a", metrics={"m": (float("nan"), 0, 1)}))
    assert compare_mlflow(old, new)[0] == []


# ------------------------------------------------------------------ GPU judgement
# NVML's answer as the probe returns it: the first one was recorded on an H100 by
# tests/verify/device_gpu_check.py; the others have its shape (no MIG GPU here to record).
H100 = {
    "driver": "580.159.04",
    "device_count": 1,
    "devices": [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total_bytes": 85520809984,
            "mig_mode": 0,
            "mig_devices": [],
        }
    ],
}
H100_MIG = {
    "device_count": 1,
    "devices": [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total_bytes": 85520809984,
            "mig_mode": 1,
            "mig_devices": [
                {"name": "NVIDIA H100 80GB HBM3 MIG 1g.10gb", "memory_total_bytes": 10 * 2**30}
            ],
        }
    ],
}
NO_GPU = {"error": "NVML unavailable: NVML Shared Library Not Found"}


@pytest.mark.parametrize(
    ("plan", "seen", "status", "kinds"),
    [
        ({}, NO_GPU, SKIPPED, []),
        ({"gpus": 0, "sharing": "none"}, NO_GPU, SKIPPED, []),
        ({"gpus": 2, "sharing": "none"}, NO_GPU, FAIL, ["gpu-not-visible"]),
        ({}, H100, PASS, []),
        ({"gpus": 1, "sharing": "none"}, H100, PASS, []),
        (
            {"gpus": 1, "sharing": "time-slicing", "time_slicing_replicas": 4},
            H100,
            INCONCLUSIVE,
            [],
        ),
        (
            {"gpus": 1, "sharing": "mig", "mig_devices_per_gpu": {"1g.10gb": 7}},
            H100,
            FAIL,
            ["gpu-sharing-mismatch"],
        ),
        ({"gpus": 1, "sharing": "mig", "mig_devices_per_gpu": {"1g.10gb": 7}}, H100_MIG, PASS, []),
        (
            {"gpus": 1, "sharing": "mig", "mig_devices_per_gpu": {"3g.40gb": 2}},
            H100_MIG,
            FAIL,
            ["gpu-sharing-mismatch"],
        ),
        ({"gpus": 1, "sharing": "none"}, H100_MIG, FAIL, ["gpu-sharing-mismatch"]),
        (
            {"gpus": 2, "sharing": "none"},
            {
                "device_count": 2,
                "devices": [H100["devices"][0], {**H100["devices"][0], "index": 1}],
            },
            FAIL,
            ["gpu-sharing-mismatch"],
        ),
    ],
)
def test_gpu_judgement(plan, seen, status, kinds):
    result = judge_gpu(plan, seen)
    assert result.status == status, result.summary
    assert [d.kind for d in result.differences] == kinds
    if status == SKIPPED:
        assert "NVML" in result.summary  # the reason, never a silent pass


# ------------------------------------------------------------------ capacity gate


def test_capacity_same_load_passes_and_slower_new_fails(tmp_path):
    old = synthetic_run(tmp_path / "old", seed=1)
    same = synthetic_run(tmp_path / "same", seed=2)
    slower = synthetic_run(tmp_path / "slower", seed=3, scale=1.3)
    ok = capacity_from_runs(old, same)
    assert ok.status == PASS and ok.differences == ()
    bad = capacity_from_runs(old, slower)
    assert bad.status == FAIL
    assert {d.kind for d in bad.differences} == {"capacity-regression"}
    assert any("p95" in d.subject for d in bad.differences)


def test_capacity_partial_new_run_is_inconclusive(tmp_path):
    old = synthetic_run(tmp_path / "old", seed=1)
    partial = synthetic_run(tmp_path / "partial", seed=2, status="partial", stop_at_s=9)
    result = capacity_from_runs(old, partial)
    assert result.status == INCONCLUSIVE and "partial" in result.summary


def _capacity_runs_cli(old: Path, new: Path) -> tuple[int, dict]:
    """`labcap verify --checks capacity --capacity-runs OLD,NEW --json` (nothing listens on
    the deployments' ports: judging measured runs reaches neither)."""
    import json

    r = invoke("verify", "--old", "http://127.0.0.1:9", "--new", "http://127.0.0.1:10",
               "--checks", "capacity", "--capacity-runs", f"{old},{new}", "--json")  # fmt: skip
    return r.exit_code, json.loads(r.stdout)


def test_capacity_runs_measured_one_after_the_other_are_judged(tmp_path):
    """--capacity-runs: the gate on two runs measured before (one per deployment, not at
    once); no load is run and nothing is written unless --out says so."""
    old = synthetic_run(tmp_path / "old", seed=1)
    code, same = _capacity_runs_cli(old, synthetic_run(tmp_path / "same", seed=2))
    (check,) = same["checks"]
    assert (code, check["status"], same["verdict"]) == (0, PASS, READY), same
    assert check["details"]["runs"] == {"old": str(old), "new": str(tmp_path / "same")}
    code, slower = _capacity_runs_cli(old, synthetic_run(tmp_path / "slow", seed=3, scale=1.3))
    (check,) = slower["checks"]
    assert (code, check["status"]) == (1, FAIL), slower
    assert check["summary"].endswith("max users at SLO: old ≥ 10 users, new ≥ 10 users"), check
    assert {d["kind"] for d in check["differences"]} == {"capacity-regression"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old", "same", "slow"]


def test_capacity_runs_not_measured_alike_are_inconclusive(tmp_path):
    old = synthetic_run(tmp_path / "old", seed=1)
    other = synthetic_run(tmp_path / "other", seed=2, users=(1, 3), scenario="mlflow")
    code, result = _capacity_runs_cli(old, other)
    (check,) = result["checks"]
    assert check["status"] == INCONCLUSIVE and code != 0, result
    assert check["summary"].startswith("the two runs were not measured alike"), check
    assert "ran scenario 'mlflow'" in check["summary"] and "stepped through" in check["summary"]


def test_capacity_runs_a_partial_run_is_the_gates_to_judge(tmp_path):
    """A partial run is measured alike (same scenario, steps, SLOs): not 'not measured
    alike', but the gate's inconclusive, saying it is partial."""
    old = synthetic_run(tmp_path / "old", seed=1)
    partial = synthetic_run(tmp_path / "partial", seed=2, status="partial", stop_at_s=9)
    code, result = _capacity_runs_cli(old, partial)
    (check,) = result["checks"]
    assert check["status"] == INCONCLUSIVE and code == 3, result
    assert "partial" in check["summary"] and "not measured alike" not in check["summary"]


@pytest.mark.parametrize(
    ("value", "said"),
    [("only-one", "give two run directories"), ("a,b", "a: no such run directory")],
)
def test_capacity_runs_bad_value_is_one_line(tmp_path, value, said):
    r = invoke("verify", "--old", "http://127.0.0.1:9", "--new", "http://127.0.0.1:10",
               "--checks", "capacity", "--capacity-runs", value)  # fmt: skip
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], r.stderr


# ------------------------------------------------------------------ verdicts and JUnit


def _result(*checks: CheckResult) -> VerifyResult:
    return VerifyResult({"source": "old"}, {"source": "new"}, checks)


def test_verdicts_and_exit_codes():
    ok = CheckResult("data", PASS, "identical")
    skipped = CheckResult("gpu", SKIPPED, "no GPU planned, none present")
    failed = CheckResult("logins", FAIL, "1 failed", (Difference("login-failed", "user x"),))
    unsure = CheckResult("capacity", INCONCLUSIVE, "partial run")
    critical = CheckResult("logins", FAIL, "none served", critical=True)
    assert (_result(ok, skipped).verdict, _result(ok, skipped).exit_code) == (READY, 0)
    assert (_result(ok, failed).verdict, _result(ok, failed).exit_code) == (FIX, 1)
    assert (_result(ok, unsure).verdict, _result(ok, unsure).exit_code) == (FIX, 3)
    assert (_result(ok, critical).verdict, _result(ok, critical).exit_code) == (ROLL_BACK, 1)
    assert _result(failed, unsure).failed_checks == ["logins", "capacity"]


def test_junit_one_testcase_per_check():
    result = _result(
        CheckResult("data", FAIL, "1 difference", (Difference("missing-run", "run e/r (1)"),)),
        CheckResult("gpu", SKIPPED, "no GPU"),
        CheckResult("capacity", INCONCLUSIVE, "partial"),
        CheckResult("logins", PASS, "2/2"),
    )
    suite = ET.fromstring(junit_xml(result)).find("testsuite")
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == ("4", "1", "1", "1")
    assert "missing-run run e/r (1)" in suite.find("testcase[@name='data']/failure").text
    assert suite.find("testcase[@name='gpu']/skipped").get("message") == "no GPU"
    assert suite.find("testcase[@name='capacity']/error") is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == FIX and props["exit_code"] == "1"


# ------------------------------------------------------------------ targets and bad input


def test_target_file_with_profile_and_env_credentials(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/sizing.json").write_text(
        '{"gpu": {"gpus": 2, "sharing": "time-slicing", "time_slicing_replicas": 4}}'
    )
    target = tmp_path / "new.yaml"
    target.write_text("hub_url: http://127.0.0.1:8443/\nfiles: [home]\nprofile: deploy\n")
    dep = resolve_deployment("new", str(target), env={"LABCAP_NEW_HUB_PASSWORD": "s3cret-pw"})
    assert dep.hub_url == "http://127.0.0.1:8443"
    assert dep.file_roots == ((tmp_path / "home").absolute(),)
    assert dep.gpu_plan["gpus"] == 2 and dep.hub_password == "s3cret-pw"
    described = str(dep.describe())
    assert "s3cret-pw" not in described and "'hub_password': True" in described


def test_url_credentials_are_dropped_from_what_is_printed():
    dep = resolve_deployment("old", "https://u:pw@hub.example.org/?token=abc", env={})
    assert dep.describe()["source"] == "https://hub.example.org/"


@pytest.mark.parametrize(
    ("text", "content", "fragment"),
    [
        ("", None, "is empty"),
        ("nonsense", None, "is neither a URL"),
        ("t.yaml", "hub_url: http://x\nhub_password: pw\n", "secrets go in --credentials"),
        ("t.yaml", "mlflow_url: http://x\n", "hub_url is required"),
        ("t.yaml", "hub_url: ftp://x\n", "must start with http"),
        ("t.yaml", "hub_url: http://x\nfiles: [nowhere]\n", "is not a directory"),
        ("t.yaml", "hub_url: http://x\ngpu: {sharing: mps}\n", "unknown; valid: none"),
        ("t.json", "{not json", "is not valid YAML/JSON"),
    ],
)
def test_bad_targets_say_why(tmp_path, text, content, fragment):
    if content is not None:
        (tmp_path / text).write_text(content)
        text = str(tmp_path / text)
    with pytest.raises(LabcapError, match=fragment):
        resolve_deployment("new", text, env={})


def test_credentials_file_must_be_private(tmp_path):
    creds = tmp_path / "creds.yaml"
    creds.write_text("new: {hub_password: pw}\n")
    creds.chmod(0o644)
    with pytest.raises(LabcapError, match="chmod 600"):
        read_credentials(creds)
    creds.chmod(0o600)
    assert read_credentials(creds) == {"new": {"hub_password": "pw"}}
    creds.write_text("new: {password: pw}\n")
    with pytest.raises(LabcapError, match="valid: hub_password"):
        read_credentials(creds)


def test_checks_and_users_parsing():
    assert parse_checks("capacity,logins,data") == ("data", "logins", "capacity")
    with pytest.raises(LabcapError, match="valid: logins, gpu, data, capacity"):
        parse_checks("logins,speed")
    assert sample_users("2") == ("labcap-verify-1", "labcap-verify-2")
    assert sample_users("alice, bob,alice") == ("alice", "bob")
    with pytest.raises(LabcapError):
        sample_users("0")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--old", "http://127.0.0.1:9", "--new", "http://127.0.0.1:9", "--checks", "x"],
            "unknown check",
        ),
        (["--old", "nowhere", "--new", "http://127.0.0.1:9"], "is neither"),
        (
            ["--old", "http://127.0.0.1:9", "--new", "http://127.0.0.1:9", "--sample-users", ","],
            "--sample-users is empty",
        ),
        (
            ["--old", "http://127.0.0.1:9", "--new", "http://127.0.0.1:9", "--spawn-margin", "x"],
            "not a percentage",
        ),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args, fragment):
    result = invoke("verify", *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output


def test_unreachable_new_mlflow_is_inconclusive_not_a_pass(tmp_path):
    """Nothing listens on port 9 of loopback: the data check cannot pass on missing data."""
    from labcap.verify import VerifySettings, run_verify

    old = resolve_deployment("old", "http://127.0.0.1:9", mlflow_url="http://127.0.0.1:9", env={})
    new = resolve_deployment("new", "http://127.0.0.1:9", mlflow_url="http://127.0.0.1:9", env={})
    result = run_verify(old, new, VerifySettings(checks=("data",)))
    (data,) = result.checks
    assert data.status == INCONCLUSIVE and result.exit_code == 3


def test_logins_without_a_password_is_a_usage_error():
    from labcap.verify import VerifySettings, run_verify

    old = resolve_deployment("old", "http://127.0.0.1:9", env={"LABCAP_OLD_HUB_PASSWORD": "pw"})
    new = resolve_deployment("new", "http://127.0.0.1:9", env={})
    with pytest.raises(LabcapError, match="LABCAP_NEW_HUB_PASSWORD"):
        run_verify(old, new, VerifySettings(checks=("logins",)))


def test_store_listing_has_the_api_shape(tmp_path):
    from labcap.verify.mlflow_data import list_store

    _tree(tmp_path / "run", {"a.txt": "12345", "model/w.bin": "xy"})
    assert list_store(tmp_path / "run") == {
        "a.txt": (False, 5),
        "model": (True, None),
        "model/w.bin": (False, 2),
    }
    # MLflow makes a run's artifact directory only when something is logged
    assert list_store(tmp_path / "never-logged") == {}
