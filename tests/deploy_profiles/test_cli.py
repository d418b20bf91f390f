"""`labcap profile` end to end, as a user runs it: a subprocess on a synthetic run directory."""

from __future__ import annotations

import json
import stat

import yaml

from tests.support.cli import labcap


def test_profile_k3s_json_end_to_end(lab_run, tmp_path):
    out = tmp_path / "deploy"
    proc = labcap(
        "profile", lab_run, "--platform", "k3s", "--out", out, "--expected-users", "80",
        "--gpus", "2", "--gpu-sharing", "time-slicing", "--gpu-users", "10", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sizing = json.loads(proc.stdout)
    assert sizing["kind"] == "labcap-deploy-profile" and sizing["platform"] == "k3s"
    decisions = {d["key"]: d for d in sizing["decisions"]}
    assert decisions["hub.concurrent_spawn_limit"]["value"] == 45
    assert decisions["cluster.nodes"]["value"] == 4
    # 10 GPU users on 2 GPUs: labcap's default 4 replicas per GPU, the shortfall a warning
    assert sizing["gpu"]["time_slicing_replicas"] == 4 and sizing["gpu"]["capacity"] == 8
    assert any("at most 8 GPU servers run at once" in w for w in sizing["warnings"])
    assert json.loads((out / "sizing.json").read_text()) == sizing
    for f in sizing["files"]:
        assert (out / f["path"]).is_file()
    assert stat.S_IMODE((out / "secrets.yaml").stat().st_mode) == 0o600
    string_data = yaml.safe_load((out / "secrets.yaml").read_text())["stringData"]
    # HUB_ADMIN_USER is a user name (default "admin"), kept beside the secrets, not one
    secret_values = [v for k, v in string_data.items() if k != "HUB_ADMIN_USER"]
    for value in filter(None, secret_values):
        assert value not in proc.stdout and value not in proc.stderr


def test_profile_compose_text_output(lab_run, tmp_path):
    proc = labcap(
        "profile", lab_run, "--platform", "compose", "--out", tmp_path / "c",
        "--expected-users", "20",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "hub.start_timeout_s" in proc.stdout and "compose profile: 8 files" in proc.stdout
    assert stat.S_IMODE((tmp_path / "c/.env").stat().st_mode) == 0o600


def test_inconsistent_gpu_sharing_exits_2_with_the_reason_and_writes_nothing(lab_run, tmp_path):
    out = tmp_path / "deploy"
    proc = labcap(
        "profile", lab_run, "--platform", "k3s", "--out", out, "--expected-users", "40",
        "--gpus", "1", "--gpu-sharing", "mig", "--gpu-model", "A100-40GB",
        "--mig-profile", "7g.40gb", "--mig-profile", "1g.5gb=1",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("labcap: error: too many MIG slices: 1 × 7g.40gb + 1 × 1g.5gb")
    assert proc.stdout == "" and not out.exists()


def test_a_run_without_capacity_needs_expected_users(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "r", {5: {"api.a": [900.0] * 20}}, slos=["p95_ms=500"])
    proc = labcap("profile", run, "--platform", "compose", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "pass --expected-users N" in proc.stderr
    assert not (tmp_path / "o").exists()
