"""`labcap cleanup` removes what a crashed run left behind, and nothing that is in use.

Real leftovers: a real load engine orphaned from its run (started as the runner
would, then left without it), a real container in a private dockerd carrying
labcap's labels, a stale run lock, and labcap-* temporary directories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from labcap.measure.cleanup import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RUN_ID_LABEL,
    _temp_dirs,
    lock_is_held,
)
from labcap.measure.run import resolve_scenario
from labcap.model import build_plan, plan_to_dict
from labcap.store import run_lock
from tests.faults.test_faults import LOCUSTFILE, fault_target, wait_for_window
from tests.support.cli import labcap


@pytest.fixture
def private_docker():
    from tests.docker.engine import PrivateEngine, build_test_image, ensure_tools, remove_all

    reason = ensure_tools()
    if reason:
        pytest.skip(f"no private dockerd: {reason}")
    eng = PrivateEngine()
    eng.start()
    client = eng.client()
    build_test_image(client)
    yield eng, client
    remove_all(client)
    client.close()
    eng.destroy()


def test_cleanup_removes_a_crashed_runs_engine_container_and_lock(tmp_path, private_docker):
    from tests.docker.engine import TEST_IMAGE

    eng, client = private_docker
    run_id = "crashed0run1"
    runs = tmp_path / "runs"
    out = runs / run_id
    with run_lock(out):  # the crashed run held its lock; the file stays behind
        pass
    with fault_target() as (_server, port):
        # the engine, started as the runner starts it, whose runner is gone
        plan = build_plan((1, 1), 30, settle_s=1, window_s=1, spawn_rate=5)
        cfg = {
            "scenario": resolve_scenario(LOCUSTFILE),
            "hosts": {"default": f"http://127.0.0.1:{port}"},
            "load": plan_to_dict(plan),
        }
        (out / ".engine.json").write_text(json.dumps(cfg))
        engine = subprocess.Popen(
            [sys.executable, "-m", "labcap.loadtests.engine", str(out / ".engine.json")]
            + [str(out / "journal.jsonl")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cid = client.api.create_container(
            TEST_IMAGE,
            command=["sleep", "300"],
            labels={MANAGED_BY_LABEL: MANAGED_BY, RUN_ID_LABEL: run_id},
            name=f"labcap-{run_id}",
            host_config=client.api.create_host_config(network_mode="host"),
        )["Id"]
        client.api.start(cid)
        other = client.api.create_container(TEST_IMAGE, command=["sleep", "300"], name="not-ours")
        try:
            wait_for_window(out, 0)
            env = {"DOCKER_HOST": eng.host}
            cleanup = ("cleanup", "--run", run_id, "--runs-dir", runs)
            dry = labcap(*cleanup, "--dry-run", "--json", env=env)
            assert dry.returncode == 0, dry.stderr
            would = {(f["kind"], f["action"]) for f in json.loads(dry.stdout)}
            assert {("process", "would remove"), ("container", "would remove")} <= would
            assert ("lock", "would remove") in would and engine.poll() is None  # untouched
            r = labcap("cleanup", "--run", run_id, "--runs-dir", runs, "--json", env=env)
            assert r.returncode == 0, r.stderr
            done = {(f["kind"], f["action"]) for f in json.loads(r.stdout)}
            assert {("process", "removed"), ("container", "removed"), ("lock", "removed")} <= done
            assert engine.wait(timeout=30) is not None
            names = [c["Names"][0] for c in client.api.containers(all=True)]
            assert names == ["/not-ours"]  # unlabelled containers are not labcap's
            assert not (out / ".lock").exists()
            again = labcap("cleanup", "--run", run_id, "--runs-dir", runs, env=env)
            assert again.returncode == 0 and "nothing to clean up" in again.stderr
        finally:
            if engine.poll() is None:
                engine.kill()
            engine.wait()
            client.api.remove_container(other, force=True)


def test_cleanup_keeps_a_live_runs_lock(tmp_path):
    runs = tmp_path / "runs"
    with run_lock(runs / "live"):
        assert lock_is_held(runs / "live")
        r = labcap(
            "cleanup",
            "--run",
            "live",
            "--runs-dir",
            runs,
            "--json",
            env={"DOCKER_HOST": "unix:///nonexistent"},
        )
        assert r.returncode == 0, r.stderr
        found = json.loads(r.stdout)
        assert {"kind": "lock", "name": str(runs / "live" / ".lock"), "action": "kept",
                "reason": "a live run holds it"} in found  # fmt: skip
        assert (runs / "live" / ".lock").exists()
        assert any(f["kind"] == "docker" and f["action"] == "skipped" for f in found)


def test_temp_dirs_not_in_use_are_removed(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own temp dir
    old, young, used = (tmp_path / f"labcap-{n}" for n in ("old", "young", "used"))
    for d in (old, young, used):
        d.mkdir()
    now = time.time()
    for d in (old, used):
        os.utime(d, (now - 3600, now - 3600))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=used)
    try:
        while psutil.Process(holder.pid).cwd() != str(used):
            time.sleep(0.05)
        found = {f.name: f.action for f in _temp_dirs(False, now)}
    finally:
        holder.kill()
        holder.wait()
    assert found == {str(old): "removed", str(young): "kept", str(used): "kept"}
    assert not old.exists() and young.exists() and used.exists()
