"""Remote workers (`labcap worker` + `labcap run --expect-workers`), as separate processes.

Each worker is its own `labcap worker` process whose connections to the master leave from
its own loopback address (127.0.0.2, 127.0.0.3), standing in for other hosts; the master
binds 127.0.0.1. Everything stays on loopback. The targets are the loopback test servers
of tests/support, which count the requests they answer (GET /count).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labcap import __version__
from labcap.store import JOURNAL
from tests.support.cli import labcap, labcap_argv
from tests.support.queue_server import saturation_users
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parents[1] / "support"
SRC = Path(__file__).parents[2] / "src"
SECRET = "test-worker-secret-0123456789"
ADDRESSES = ("127.0.0.2", "127.0.0.3")


def _free_port_pair() -> int:
    """A port P with P+1 free too (the handshake and Locust's link)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65534:
                continue
            try:
                with socket.socket() as b:
                    b.bind(("127.0.0.1", port + 1))
                    return port
            except OSError:
                continue
    raise AssertionError("no free pair of ports")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LABCAP_WORKER_SECRET": SECRET, **extra}


def _master(
    out: Path, host: str, port: int, *args: str, n: int = 2, env: dict | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        labcap_argv(
            "run", "--host", host, "--expect-workers", n,
            "--master-bind", f"127.0.0.1:{port}", "--no-calibrate", "--out", out, "--json",
            *args,
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or _env(),
    )  # fmt: skip


def _worker(port: int, bind: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        labcap_argv("worker", "--master", f"127.0.0.1:{port}", "--bind", bind, "--wait", "60s",
                    *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or _env(),
        start_new_session=True,  # its own process group: killed with its engine
    )  # fmt: skip


def _finish(*procs: subprocess.Popen, timeout: float = 240) -> list[tuple[int, str, str]]:
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def _count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/count", timeout=10) as r:  # loopback test target
        return int(r.read())


def _windows(out: Path):
    import pandas as pd

    return pd.read_parquet(out / "windows.parquet")


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


def test_two_remote_workers_merge_exactly_what_the_target_answered(tmp_path, target):
    """Each of 6 users sends exactly 15 requests: 90 reach the target, 90 are in the run
    (each counted once), spread over two workers on two addresses; each worker's CPU and
    calibration are in the manifest."""
    port = _free_port_pair()
    out = tmp_path / "run"
    before = _count(target)
    env = _env(LABCAP_COUNTED_REQUESTS="15")
    master = _master(
        out, target, port, "--scenario", str(SUPPORT / "locustfile_counted.py"),
        "--users", "6", "--step-duration", "8s", "--settle", "1s", "--window", "1s",
        "--spawn-rate", "60", env=env,
    )  # fmt: skip
    w1 = _worker(port, ADDRESSES[0], "--calibrate", env=env)
    w2 = _worker(port, ADDRESSES[1], "--no-calibrate", env=env)
    (rc, stdout, stderr), (rc1, _, err1), (rc2, _, err2) = _finish(master, w1, w2)
    assert rc == 0, stderr
    assert rc1 == 0 and rc2 == 0, (err1, err2)
    served = _count(target) - before
    windows = _windows(out)
    assert served == 6 * 15
    assert int(windows["requests"].sum()) == served  # every request once, none twice
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete", manifest["status_reasons"]
    workers = {w["address"]: w for w in manifest["workers"]}
    assert set(workers) == set(ADDRESSES)
    assert workers[ADDRESSES[0]]["calibration"]["ceiling_rps"] > 0
    assert workers[ADDRESSES[1]]["calibration"] is None
    assert all(w["labcap_version"] == __version__ for w in workers.values())
    per_worker = manifest["generator"]["per_worker"]
    assert set(per_worker) == {w["name"] for w in manifest["workers"]}
    assert all(w["windows"] > 0 for w in per_worker.values())
    assert SECRET not in stdout + stderr + err1 + err2
    assert SECRET not in (out / "manifest.json").read_text()


# the queueing target of tests/planner/test_capacity_queueing.py: N* = 40 users
K, SERVICE_S, THINK_S = 4, 0.150, 1.350
QUEUE_STEPS = "32,36,40,44,48"


def _queue_args(out: Path, host: str) -> list[str]:
    return [
        "--host", host, "--scenario", str(SUPPORT / "locustfile_queue.py"),
        "--users", QUEUE_STEPS, "--step-duration", "9s", "--settle", "3s", "--window", "6s",
        "--spawn-rate", "60", "--slo", f"p95_ms={2 * SERVICE_S * 1000:g}", "--slo",
        "error_pct=1", "--no-calibrate", "--out", str(out),
    ]  # fmt: skip


def _capacity(out: Path) -> dict:
    r = labcap("plan", str(out), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["capacity"]


def test_remote_workers_find_the_capacity_a_local_run_finds(tmp_path):
    queue_env = {"LABCAP_QUEUE_THINK_S": str(THINK_S), "LABCAP_QUEUE_CYCLE_S": "1.5"}
    n_star = saturation_users(K, SERVICE_S, THINK_S)
    with loopback_server("queue_server.py", str(K), str(SERVICE_S * 1000)) as host:
        local = tmp_path / "local"
        r = labcap("run", *_queue_args(local, host), env=queue_env, timeout=300)
        assert r.returncode == 0, r.stderr
        port = _free_port_pair()
        remote = tmp_path / "remote"
        env = _env(**queue_env, LABCAP_QUEUE_WORKERS="2")
        before = _count(host)
        master = subprocess.Popen(
            labcap_argv(*["run", *_queue_args(remote, host)], "--expect-workers", "2",
                        "--master-bind", f"127.0.0.1:{port}"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        workers = [_worker(port, a, "--no-calibrate", env=env) for a in ADDRESSES]
        (rc, _, stderr), *rest = _finish(master, *workers, timeout=300)
        time.sleep(1.0)  # the station finishes what was queued when the users stopped
        served = _count(host) - before
    assert rc == 0, stderr
    assert all(w[0] == 0 for w in rest), rest
    cap_local, cap_remote = _capacity(local), _capacity(remote)
    print(
        f"\nN* = {n_star:g}; local max_users_at_slo {cap_local['max_users_at_slo']}, "
        f"2 remote workers {cap_remote['max_users_at_slo']}"
    )
    assert cap_local["max_users_at_slo"] and cap_remote["max_users_at_slo"]
    assert abs(cap_remote["max_users_at_slo"] - cap_local["max_users_at_slo"]) <= (
        0.1 * cap_local["max_users_at_slo"]
    )
    # counted once: never more than the target answered; fewer only by the requests in
    # flight when the load stopped (at most one per user of the last step)
    counted = int(_windows(remote)["requests"].sum())
    assert served - 48 <= counted <= served, (counted, served)


def test_a_worker_lost_mid_run_leaves_a_partial_run_with_its_windows_kept(tmp_path, target):
    port = _free_port_pair()
    out = tmp_path / "run"
    master = _master(
        out, target, port, "--scenario", str(SUPPORT / "locustfile_target.py"),
        "--users", "4", "--step-duration", "10s", "--settle", "1s", "--window", "1s",
    )  # fmt: skip
    w1 = _worker(port, ADDRESSES[0], "--no-calibrate")
    w2 = _worker(port, ADDRESSES[1], "--no-calibrate")
    try:
        deadline = time.monotonic() + 90
        merged = 0
        while merged < 3 and time.monotonic() < deadline:
            journal = out / JOURNAL
            merged = journal.read_text().count('"kind":"window"') if journal.exists() else 0
            time.sleep(0.2)
        assert merged >= 3, "no windows were merged"
        os.killpg(w2.pid, signal.SIGKILL)  # the machine 127.0.0.3 stands for is gone
        (rc, _, stderr), (rc1, _, err1) = _finish(master, w1)
    finally:
        for p in (master, w1, w2):
            if p.poll() is None:
                p.kill()
            p.wait()
    assert rc == 0, stderr
    assert rc1 == 0, err1
    manifest = json.loads((out / "manifest.json").read_text())
    lost = next(w["name"] for w in manifest["workers"] if w["address"] == ADDRESSES[1])
    assert manifest["status"] == "partial"
    reasons = [r for r in manifest["status_reasons"] if r.startswith(f"worker {lost} ")]
    assert reasons and "lost at window" in reasons[0] and ADDRESSES[1] in reasons[0]
    assert "lost" in stderr
    # its windows before the loss were merged and kept: its CPU readings span them
    assert manifest["generator"]["per_worker"][lost]["windows"] >= 2
    windows = _windows(out)
    assert len(windows) >= 9 and windows["requests"].sum() > 0


def _refused(tmp_path: Path, target: str, worker_env: dict) -> tuple[tuple, tuple]:
    port = _free_port_pair()
    out = tmp_path / "run"
    master = _master(
        out, target, port, "--scenario", str(SUPPORT / "locustfile_target.py"), "--users", "2",
        "--step-duration", "2s", "--worker-wait", "15s", n=1,
    )  # fmt: skip
    worker = _worker(port, ADDRESSES[0], "--no-calibrate", env=worker_env)
    m, w = _finish(master, worker, timeout=120)
    assert not out.exists()  # refused before anything was written
    return m, w


def _one_error_line(stderr: str) -> str:
    errors = [ln for ln in stderr.strip().splitlines() if ln.startswith("labcap: error:")]
    assert len(errors) == 1, stderr
    assert stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


def test_a_worker_of_another_labcap_version_is_refused(tmp_path, target):
    other = tmp_path / "other" / "labcap"
    shutil.copytree(SRC / "labcap", other, ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "__init__.py"
    init.write_text(init.read_text().replace(f'"{__version__}"', '"0.0.1-other"'))
    env = _env(PYTHONPATH=os.pathsep.join([str(other.parent), os.environ.get("PYTHONPATH", "")]))
    (rc, _, stderr), (wrc, _, werr) = _refused(tmp_path, target, env)
    line = _one_error_line(werr)
    assert wrc == 2
    assert "refused this worker" in line and "labcap 0.0.1-other" in line and __version__ in line
    assert rc == 2
    assert f"refused a worker from {ADDRESSES[0]}: labcap 0.0.1-other" in stderr
    assert "only 0 of 1 workers joined" in _one_error_line(stderr)


def test_a_worker_with_the_wrong_secret_is_refused(tmp_path, target):
    wrong = "not-the-shared-secret-4242"
    (rc, out, stderr), (wrc, wout, werr) = _refused(
        tmp_path, target, _env(LABCAP_WORKER_SECRET=wrong)
    )
    line = _one_error_line(werr)
    assert wrc == 2 and "refused this worker: wrong secret" in line
    assert rc == 2 and f"refused a worker from {ADDRESSES[0]}: wrong secret" in stderr
    assert "only 0 of 1 workers joined" in _one_error_line(stderr)
    for text in (out, stderr, wout, werr):
        assert SECRET not in text and wrong not in text


def test_expect_workers_needs_the_shared_secret(tmp_path, target):
    env = {k: v for k, v in os.environ.items() if k != "LABCAP_WORKER_SECRET"}
    r = subprocess.run(
        labcap_argv("run", "--host", target, "--expect-workers", "2", "--out", tmp_path / "r"),
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert r.returncode == 2
    assert "LABCAP_WORKER_SECRET is not set" in _one_error_line(r.stderr)
    r = labcap("worker", "--master", "nowhere", env={"LABCAP_WORKER_SECRET": SECRET})
    assert r.returncode == 2 and "--master 'nowhere'" in _one_error_line(r.stderr)


def test_worker_handshake_helpers_run_without_locust():
    # the handshake module is imported by `labcap run`'s own process: no Locust there
    code = "import labcap.loadtests.handshake, labcap.measure.remote, sys; print('locust' in sys.modules)"  # noqa: E501
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
