"""The generated Compose lab, for real: built, started, signed up to, spawned, used, backed up.

One stack per module (``lab``): ``labcap profile``'s Compose files, images built locally by
``scripts/lab-images`` (no registry), started by Debian's docker-compose 1.29 on a private
engine with the one override of ``compose_lab.py`` (host network, 127.0.0.1 ports). The
tests run in file order and build on each other, as a lab admin's day does: accounts, a
user's server, MLflow from that server, a hub restart, measuring, backup and restore.

Needs root and a Docker engine (skips without them, saying so); CI has both.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import requests

from labcap.deploy_profiles import ProfileSettings, build_profile

from ..conftest import record_run
from ..docker.engine import PrivateEngine
from ..support.cli import labcap
from ..support.user_cells import MLFLOW_CELL
from .compose_lab import ROOT, ComposeLab, require_compose_stack

ENGINE_DIR = os.environ.get("LABCAP_E2E_DOCKERD", "/tmp/labcap-compose-e2e")
PROJECT = "labcape2e"
ADMIN = "labadmin"
USER = "alice"
STEPS = {4: {"mlflow.log_batch": [50.0] * 100, "hub.spawn_ready": [4000.0] * 20}}


def _cell(lab: ComposeLab, token: str, user: str, code: str) -> None:
    """Start a kernel in the user's server, run ``code``, stop the kernel; fail on an error."""
    from labcap.loadtests.scenarios.kernel_ws import kernel_channels_url, run_cell

    r = lab.api(token, "POST", f"/user/{user}/api/kernels", json={"name": "python3"})
    assert r.status_code == 201, f"kernel start: HTTP {r.status_code}"
    kernel = r.json()["id"]
    url = kernel_channels_url(
        lab.hub_url, f"/user/{user}/api/kernels/{kernel}/channels", secrets.token_hex(16)
    )
    result = run_cell(url, {"Authorization": f"token {token}"}, code, 60)
    lab.api(token, "DELETE", f"/user/{user}/api/kernels/{kernel}")
    assert result.status == "ok", (
        f"cell failed: {result.reply_content.get('ename')}: {result.reply_content.get('evalue')}"
    )


def _listeners_of(pids: set[int]) -> list[str]:
    """Listening TCP addresses of these processes (ss -ltnp: the host network namespace)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append(line.split()[3])
    return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_compose_stack()
    started = time.monotonic()
    engine = PrivateEngine(ENGINE_DIR)
    was_running = engine.is_running()
    docker_host = engine.start()
    base = tmp_path_factory.mktemp("compose-e2e")
    run = record_run(base / "run", STEPS, slos=["p95_ms=500"])
    profile = base / "profile"
    settings = ProfileSettings("compose", expected_users=4, admin_users=(ADMIN,))
    build_profile(run, settings, profile)
    env = {**os.environ, "DOCKER_HOST": docker_host}
    t0 = time.monotonic()
    built = subprocess.run(
        [str(ROOT / "scripts" / "lab-images"), str(profile)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(f"\nlab-images: {time.monotonic() - t0:.1f} s\n{built.stdout}")
    stack = ComposeLab(profile, PROJECT, docker_host)
    stack.write_override()
    stack.down()  # leftovers of an interrupted run
    stack.remove_user_containers_and_volumes()
    stack.state = {"passwords": {u: secrets.token_urlsafe(18) for u in (ADMIN, USER)}}
    stack.state["images_s"] = time.monotonic() - t0
    try:
        t0 = time.monotonic()
        stack.up()
        print(f"stack healthy after {time.monotonic() - t0:.1f} s")
        yield stack
    finally:
        stack.down()
        stack.remove_user_containers_and_volumes()
        if not was_running:
            engine.stop()
        print(f"compose e2e module: {time.monotonic() - started:.1f} s")


def test_a_warm_image_build_builds_nothing(lab):
    t0 = time.monotonic()
    out = subprocess.run(
        [str(ROOT / "scripts" / "lab-images"), str(lab.profile)],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith("lab-images: ") and " all " not in ln]
    assert lines and all(": cached (" in ln for ln in lines), out
    assert time.monotonic() - t0 < 30


def test_the_images_are_the_ones_the_profile_pins(lab):
    env = dict(
        ln.split("=", 1) for ln in (lab.profile / ".env").read_text().splitlines() if "=" in ln
    )
    for image in ("postgres:15-bookworm", env["NOTEBOOK_IMAGE"], "ailab/hub:labcap"):
        assert lab.docker("image", "inspect", image, check=False).returncode == 0, image
    assert not env["NOTEBOOK_IMAGE"].endswith(":latest")


def test_admin_signs_up_and_approves_a_user_who_then_logs_in(lab):
    pw = lab.state["passwords"]
    lab.sign_up(ADMIN, pw[ADMIN])
    admin = lab.login(ADMIN, pw[ADMIN])
    assert admin is not None, "the admin named in HUB_ADMIN_USER cannot log in after sign-up"
    lab.sign_up(USER, pw[USER])
    assert lab.login(USER, pw[USER]) is None, "a user logged in before an admin approved"
    lab.authorize(admin, USER)
    assert lab.login(USER, "not-" + pw[USER]) is None, "a wrong password was accepted"
    session = lab.login(USER, pw[USER])
    assert session is not None, "an approved user cannot log in"
    lab.state["admin_token"] = lab.token(admin, ADMIN)
    lab.state["token"] = lab.token(session, USER)


def test_a_user_spawns_a_container_and_runs_a_cell(lab):
    token = lab.state["token"]
    t0 = time.monotonic()
    r = lab.api(token, "POST", f"/hub/api/users/{USER}/server")
    assert r.status_code in (201, 202), f"spawn: HTTP {r.status_code} {r.text[:300]}"
    lab.wait_ready(token, USER, timeout_s=120)
    lab.state["spawn_s"] = time.monotonic() - t0
    containers = lab.user_containers()
    assert len(containers) == 1, containers
    lab.state["container"] = containers[0]
    _cell(
        lab,
        token,
        USER,
        "x = 6 * 7\nassert x == 42\nopen('/home/jovyan/work/kept.txt', 'w').write('kept')",
    )


def test_every_listener_of_the_lab_is_on_loopback(lab):
    pids: set[int] = set()
    for cid in [
        *(lab.container_id(s) for s in ("postgres", "proxy", "hub", "mlflow")),
        lab.state["container"],
    ]:
        top = lab.docker("top", cid, "-eo", "pid").stdout.split()[1:]
        pids.update(int(p) for p in top if p.isdigit())
    listeners = _listeners_of(pids)
    assert len(listeners) >= 6, listeners  # proxy x2, hub, mlflow, postgres, the user server
    outside = [a for a in listeners if not (a.startswith("127.") or a.startswith("[::1]"))]
    assert not outside, f"listening beyond loopback: {outside}"


def test_the_user_server_logs_a_run_and_an_artifact_to_mlflow(lab):
    experiment = f"e2e-{secrets.token_hex(4)}"
    _cell(lab, lab.state["token"], USER, MLFLOW_CELL.replace("EXPERIMENT", experiment))
    found = requests.get(
        f"{lab.mlflow_url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": experiment},
        timeout=20,
    )
    assert found.status_code == 200, found.text[:300]
    exp_id = found.json()["experiment"]["experiment_id"]
    runs = requests.post(
        f"{lab.mlflow_url}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [exp_id]},
        timeout=20,
    ).json()["runs"]
    assert len(runs) == 1 and runs[0]["data"]["metrics"][0]["value"] == 0.93
    run_id = runs[0]["info"]["run_id"]
    path = runs[0]["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").lstrip("/")
    got = requests.get(
        f"{lab.mlflow_url}/api/2.0/mlflow-artifacts/artifacts/{path}/model.txt", timeout=20
    )
    assert got.status_code == 200 and got.content == b"weights 42"
    # the run is in PostgreSQL, the artifact in the server's volume (proxied, not client-side)
    sql = f"SELECT count(*) FROM runs WHERE run_uuid = '{run_id}'"
    count = lab.compose(
        "exec", "-T", "postgres", "psql", "-U", "postgres", "-d", "mlflow", "-tAc", sql
    )
    assert count.stdout.strip() == "1"
    stored = lab.compose("exec", "-T", "mlflow", "find", "/mlartifacts", "-name", "model.txt")
    assert run_id in stored.stdout
    lab.state["mlflow"] = (experiment, run_id, path)


def test_a_hub_restart_keeps_the_user_server_running(lab):
    token, before = lab.state["token"], lab.state["container"]
    lab.compose("restart", "hub", timeout_s=120)
    lab.wait_healthy(120, services=("hub",))
    server = lab.wait_ready(token, USER, timeout_s=60)
    assert server["ready"]
    assert lab.user_containers() == [before], "the user container was replaced or removed"
    _cell(lab, token, USER, "assert open('/home/jovyan/work/kept.txt').read() == 'kept'")


def test_a_user_stops_the_server_and_keeps_the_files(lab):
    token = lab.state["token"]
    r = lab.api(token, "DELETE", f"/hub/api/users/{USER}/server")
    assert r.status_code in (202, 204), f"stop: HTTP {r.status_code}"
    lab.wait_gone(token, USER)
    assert lab.user_containers() == [], "DockerSpawner.remove: the stopped container stays"
    vols = lab.docker("volume", "ls", "-q", "--filter", f"name=jupyterhub-user-{USER}").stdout
    assert vols.split() == [f"jupyterhub-user-{USER}"]


def test_labcap_measures_the_lab_with_container_startups(lab, tmp_path):
    """labcap run --target docker on the stack: the runbook's load-test accounts (sign-up,
    approval, $LABCAP_HUB_USERS_FILE), DockerSpawner's containers' startup phases and
    per-container CPU/memory; plan and report read the run."""
    import pandas as pd

    admin = lab.login(ADMIN, lab.state["passwords"][ADMIN])
    password = secrets.token_urlsafe(18)
    names = ["load-1", "load-2"]
    for name in names:
        lab.sign_up(name, password)
        lab.authorize(admin, name)
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join(names) + "\n")
    env = {**lab.env, "LABCAP_HUB_PASSWORD": password, "LABCAP_HUB_USERS_FILE": str(users_file)}
    out = tmp_path / "run"
    argv = [
        "run", "--host", lab.hub_url, "--mlflow-url", lab.mlflow_url,
        "--scenario", "lab", "--target", "docker", "--compose-project", PROJECT,
        "--users", "2", "--step-duration", "75s", "--settle", "5s", "--spawn-rate", "2",
        "--gpu", "none", "--no-calibrate", "--out", str(out),
    ]  # fmt: skip
    r = labcap(*argv, env=env, timeout=400)
    assert password not in r.stdout + r.stderr
    assert r.returncode in (0, 1), r.stderr[-3000:]  # 1: an SLO missed, the run still whole
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest.get("status") != "aborted", manifest.get("status")
    windows = pd.read_parquet(out / "windows.parquet").groupby("endpoint")
    done = (windows["requests"].sum() - windows["failures"].sum()).to_dict()
    failed = windows["failures"].sum().to_dict()
    # every login of the JupyterHub 5.2 stack got its token (the session's XSRF cookie)
    assert failed.get("hub.token", 0) == 0 and done.get("hub.token", 0) > 0, failed
    assert done.get("hub.spawn_ready", 0) > 0, done
    startups = pd.read_parquet(out / "startup_records.parquet")
    users = startups[startups["container"].str.startswith("jupyter-load-")]
    assert len(users) >= 1, startups[["container", "outcome"]].to_dict("records")
    assert (users["outcome"] == "ready").all(), users[["container", "outcome"]].to_dict("records")
    assert (users["running_s"] >= users["created_s"]).all()
    samples = pd.read_parquet(out / "container_samples.parquet")
    sampled = set(samples["container"])
    assert {"labcape2e_hub_1", "labcape2e_postgres_1"} <= sampled, sampled
    assert any(n.startswith("jupyter-load-") for n in sampled), sampled
    cols = ["container", "created_s", "started_s", "running_s", "ready_s", "ready_via", "outcome"]
    print("\n" + users[cols].round(3).to_string(index=False))
    usage = samples.groupby("container").agg(
        samples=("cpu_pct", "size"),
        cpu_pct_max=("cpu_pct", "max"),
        mem_bytes_max=("mem_bytes", "max"),
    )
    print(usage.to_string())
    plan = labcap("plan", out, "--json")
    assert plan.returncode == 0, plan.stderr[-2000:]
    json.loads(plan.stdout)
    report = labcap("report", out, "-o", tmp_path / "report.html")
    assert report.returncode == 0 and (tmp_path / "report.html").stat().st_size > 0
    lab.state["labcap_run"] = str(out)


def _runbook_block(profile: Path, heading: str) -> str:
    text = (profile / "RUNBOOK.md").read_text()
    section = text.split(f"### {heading}\n", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def _run_runbook(lab: ComposeLab, heading: str, cwd: Path, backup: Path) -> None:
    """One of the runbook's bash blocks, as written; `docker compose` is docker-compose 1.29
    with the test's override (the same project, the same loopback ports)."""
    argv = " ".join(shlex.quote(a) for a in lab.compose_argv()[:5])  # python3 -c SHIM -p NAME
    override = lab.profile / "test-override.yml"
    prelude = (
        "set -euo pipefail\n"
        'docker() { if [ "$1" = compose ]; then shift; '
        f'{argv} -f docker-compose.yml -f {shlex.quote(str(override))} "$@"; '
        'else command docker "$@"; fi; }\n'
        f"BACKUP={shlex.quote(str(backup))}\n"
    )
    script = prelude + _runbook_block(lab.profile, heading)
    r = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=lab.env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"runbook '{heading}' failed:\n{r.stderr[-3000:]}"


def test_backup_restores_into_a_fresh_stack_with_the_data(lab, tmp_path):
    backup = tmp_path / "backup"
    _run_runbook(lab, "Back up", lab.profile, backup)
    for name in (
        "jupyterhub.dump",
        "mlflow.dump",
        "ailab_mlartifacts.tgz",
        f"jupyterhub-user-{USER}.tgz",
        ".env",
    ):
        assert (backup / name).stat().st_size > 0, name
    lab.wait_healthy(120)
    # a fresh stack: no containers, no volumes; then the runbook's restore from the backup
    lab.down()
    lab.remove_user_containers_and_volumes()
    assert not lab.docker("volume", "ls", "-q", "--filter", "name=ailab_").stdout.strip()
    _run_runbook(lab, "Restore (a fresh server, or rollback after an upgrade)", backup, backup)
    lab.wait_healthy(180)
    pw = lab.state["passwords"]
    session = lab.login(USER, pw[USER])
    assert session is not None, "the restored hub does not know the approved user"
    token = lab.token(session, USER)
    experiment, run_id, path = lab.state["mlflow"]
    found = requests.get(
        f"{lab.mlflow_url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=20
    )
    assert found.status_code == 200, "the MLflow run is gone after the restore"
    got = requests.get(
        f"{lab.mlflow_url}/api/2.0/mlflow-artifacts/artifacts/{path}/model.txt", timeout=20
    )
    assert got.content == b"weights 42", "the MLflow artifact is gone after the restore"
    r = lab.api(token, "POST", f"/hub/api/users/{USER}/server")
    assert r.status_code in (201, 202)
    lab.wait_ready(token, USER)
    _cell(lab, token, USER, "assert open('/home/jovyan/work/kept.txt').read() == 'kept'")
    lab.api(token, "DELETE", f"/hub/api/users/{USER}/server")
    lab.wait_gone(token, USER)
    print(
        json.dumps(
            {
                "spawn_s": round(lab.state.get("spawn_s", 0), 1),
                "images_s": round(lab.state["images_s"], 1),
            }
        )
    )
