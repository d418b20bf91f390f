"""The fault-injection suite: real processes, real faults, every case bounded in time.

For each fault: the run directory keeps every completed window, its status is
partial or invalid with the reason, every Parquet file reads, `plan` gives no
confident verdict (insufficient-data), `report` shows the reasons at the top,
`gate` answers inconclusive (exit 3), and no labcap process or container is
left. Each case adds a row to the fault -> outcome matrix printed at the end.
(The Kubernetes API server case lives with the cluster tests, tests/k8s.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest

from labcap.model import plan_from_dict
from labcap.store import JOURNAL, RunDir, read_journal
from tests.faults.conftest import MATRIX
from tests.support.cli import labcap

HERE = Path(__file__).parent
LOCUSTFILE = str(HERE / "locustfile_fault.py")
RUN_TIMEOUT_S = 120


def start_run(out: Path, host: str, *, users="2,2,2", step="4s", extra=(), env=None):
    cmd = [
        sys.executable, "-m", "labcap.cli", "run", "--host", host, "--scenario", LOCUSTFILE,
        "--users", users, "--step-duration", step, "--settle", "1s", "--window", "1s",
        "--no-calibrate", "--out", str(out), *extra,
    ]  # fmt: skip
    if "--no-calibrate" not in labcap_run_help():
        cmd.remove("--no-calibrate")
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


_HELP: list[str] = []


def labcap_run_help() -> str:
    if not _HELP:
        _HELP.append(labcap("run", "--help").stdout)
    return _HELP[0]


def wait_for_window(out: Path, step_index: int, timeout_s: float = 60) -> None:
    """Until the journal holds a window of ``step_index`` (the earlier steps are done)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        recs = read_journal(out / JOURNAL)
        if any(r.get("kind") == "window" and r.get("step_index", -1) >= step_index for r in recs):
            return
        time.sleep(0.1)
    raise AssertionError(f"no window of step {step_index + 1} within {timeout_s:g}s")


def finish(proc, timeout_s: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"the run did not end within {timeout_s:g}s: {err[-2000:]}") from None
    return proc.returncode, err


def processes_of(out: Path) -> list[str]:
    """labcap processes (run, engine, workers) still working on ``out``."""
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(p.info["cmdline"] or [])
            if str(out) in cmd and p.pid != os.getpid():
                left.append(f"{p.pid}: {cmd[:120]}")
    return left


def wait_gone(out: Path, timeout_s: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_of(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def check_outcome(
    fault: str,
    out: Path,
    *,
    reason: str,
    completed_steps: int = 1,
    statuses: tuple[str, ...] = ("partial", "invalid"),
    containers: list[str] | None = None,
) -> dict:
    """The common assertions of every fault case; returns the manifest as read."""
    left = wait_gone(out)
    assert not left, f"processes left behind: {left}"
    run = RunDir.open(out)
    m = run.manifest
    assert m["status"] in statuses, m["status_reasons"]
    why = [r for r in m["status_reasons"] if reason.lower() in r.lower()]
    assert why, (reason, m["status_reasons"])
    for table in out.glob("*.parquet"):  # never a corrupt file
        pd.read_parquet(table)
    windows = run.windows()
    plan = plan_from_dict(m["load"])
    done = {w.index for w in plan.windows if w.step_index < completed_steps}
    assert done <= set(windows["window_index"]), "a completed window was lost"
    p = labcap("plan", out, "--json", "--expected-users", "2")
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)["recommendation"]
    assert rec["action"] == "insufficient-data" and rec["confidence"]["level"] == "low"
    r = labcap("report", out, "-o", out.parent / f"{out.name}.html")
    assert r.returncode == 0, r.stderr
    html = (out.parent / f"{out.name}.html").read_text()
    assert 'id="validity"' in html[: html.index('id="summary"')]
    g = labcap("gate", out, out)
    assert g.returncode == 3, g.stdout + g.stderr
    MATRIX.append(
        {
            "fault": fault,
            "status": m["status"],
            "reason": why[0][:70],
            "windows": f"{windows['window_index'].nunique()}/{len(plan.windows)}",
            "plan": rec["action"],
            "gate": f"exit {g.returncode}",
            "left": "none" if not containers else ",".join(containers),
        }
    )
    return m


@contextlib.contextmanager
def fault_target(port: int = 0):
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fault_server.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        yield proc, port
    finally:
        proc.kill()
        proc.wait()


def test_target_killed_mid_step_and_restarted(tmp_path):
    out = tmp_path / "run"
    with fault_target() as (server, port):
        run = start_run(out, f"http://127.0.0.1:{port}")
        wait_for_window(out, 1)
        server.kill()  # the target dies in step 2 ...
        server.wait()
        time.sleep(1.5)
        with fault_target(port):  # ... and comes back on its port
            rc, err = finish(run)
    assert rc == 0, err
    check_outcome("target killed mid-step, restarted", out, reason="refused or dropped")


def test_target_slow_then_timing_out(tmp_path):
    out = tmp_path / "run"
    with fault_target() as (_server, port):
        url = f"http://127.0.0.1:{port}"
        run = start_run(out, url)
        wait_for_window(out, 1)
        urllib.request.urlopen(f"{url}/control?delay_ms=400", timeout=5).read()  # slow ...
        wait_for_window(out, 2)
        urllib.request.urlopen(f"{url}/control?delay_ms=3000", timeout=5).read()  # ... too slow
        rc, err = finish(run)
    assert rc == 0, err
    m = check_outcome("target slow, then timing out", out, reason="timed out", completed_steps=2)
    assert m["status"] == "partial"


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_run_process_signalled(tmp_path, sig):
    out = tmp_path / "run"
    with fault_target() as (_server, port):
        run = start_run(out, f"http://127.0.0.1:{port}", step="6s")
        wait_for_window(out, 1)
        run.send_signal(getattr(signal, sig))  # the run process only: it must handle the rest
        rc, err = finish(run)
        if sig != "SIGKILL":
            assert rc == 130 and "interrupted" in err, err
            reason = f"{sig} received"
        else:
            assert rc == -signal.SIGKILL
            reason = "ended without finalising"
        check_outcome(f"run process {sig}", out, reason=reason)


class _RaisingCollector:
    """A collector with a bug: it samples once, then its tables() and stop() raise."""

    name = "buggy"

    def start(self, ctx):
        pass

    def stop(self):
        raise RuntimeError("sampler thread already dead")

    def tables(self):
        raise ValueError("cannot build the samples table")

    def status(self):
        from labcap.collectors.base import CollectorStatus

        return CollectorStatus(self.name, True)


def test_a_collector_that_raises(tmp_path):
    from labcap.measure.run import RunRequest, execute_run
    from labcap.model import build_plan
    from labcap.slo import parse_slo

    out = tmp_path / "run"
    with fault_target() as (_server, port):
        req = RunRequest(
            out=out,
            scenario=LOCUSTFILE,
            hosts={"default": f"http://127.0.0.1:{port}"},
            plan=build_plan((2, 2), 3, settle_s=1, window_s=1, spawn_rate=10),
            slos=(parse_slo("p95_ms=500"),),
            collectors=(_RaisingCollector(),),
        )
        result = execute_run(req, lambda _msg: None)
    assert result.status == "partial"
    check_outcome(
        "a collector raises", out, reason="collector buggy: stop raised", completed_steps=2
    )
    assert any("tables raised ValueError" in r for r in RunDir.open(out).manifest["status_reasons"])


def test_two_runs_on_the_same_output_directory(tmp_path):
    out = tmp_path / "run"
    with fault_target() as (_server, port):
        url = f"http://127.0.0.1:{port}"
        first = start_run(out, url, users="2,2,2", step="8s")
        wait_for_window(out, 0)
        before = json.loads((out / "manifest.json").read_text())
        for extra in ((), ("--overwrite",)):
            second = labcap(
                "run", "--host", url, "--scenario", LOCUSTFILE, "--users", "1",
                "--step-duration", "2s", "--out", out, *extra,
            )  # fmt: skip
            lines = second.stderr.strip().splitlines()
            assert second.returncode == 2 and len(lines) == 1, second.stderr
            assert "another labcap run is writing this directory" in lines[0]
            now = json.loads((out / "manifest.json").read_text())  # the live run untouched
            assert (now["pid"], now["started_at"]) == (before["pid"], before["started_at"])
        assert first.poll() is None  # both were refused while the first run was live
        rc, err = finish(first)
    assert rc == 0, err
    left = wait_gone(out)
    assert not left
    m = RunDir.open(out).manifest
    assert m["status"] == "complete"  # the first run never noticed
    MATRIX.append(
        {
            "fault": "two runs, one output directory",
            "status": "1st complete",
            "reason": "2nd refused, exit 2: another labcap run is writing this directory",
            "windows": f"{RunDir.open(out).windows()['window_index'].nunique()}",
            "plan": "(1st) as usual",
            "gate": "-",
            "left": "none",
        }
    )


@contextlib.contextmanager
def small_disk(path: Path, size: str = "16m"):  # a report is ~5 MB
    """A tmpfs of ``size`` at ``path`` (root only); skips the test where mount is refused."""
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass  # ENOSPC: the disk is full
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)


def test_output_disk_full(tmp_path):
    with small_disk(tmp_path / "disk") as disk, fault_target() as (_server, port):
        out = disk / "run"
        run = start_run(out, f"http://127.0.0.1:{port}")
        wait_for_window(out, 1)
        _fill(disk / "filler")  # the disk fills up in step 2
        rc, err = finish(run)
        assert rc == 1, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("labcap: error: ") and "No space left on device" in last
        assert not list(out.glob(".*.tmp")), "a half-written temp file was left"
        rep = labcap("report", out)  # still full: one line, nothing half-written
        assert rep.returncode == 1 and rep.stderr.count("\n") == 1, rep.stderr
        assert "report.html: No space left" in rep.stderr and not (out / "report.html").exists()
        (disk / "filler").unlink()  # space again: everything measured before is there
        check_outcome("output disk full", out, reason="ended without finalising")


def test_dockerd_restarted_mid_run(tmp_path):
    from tests.docker.engine import PrivateEngine, ensure_tools, remove_all

    reason = ensure_tools()
    if reason:
        pytest.skip(f"no private dockerd: {reason}")
    eng = PrivateEngine()
    eng.start()
    try:
        out = tmp_path / "run"
        with fault_target() as (_server, port):
            run = start_run(
                out,
                f"http://127.0.0.1:{port}",
                extra=("--target", "docker"),
                env={"DOCKER_HOST": eng.host},
            )
            wait_for_window(out, 1)
            eng.stop()  # the engine goes away in step 2 ...
            eng.start()  # ... and comes back
            rc, err = finish(run)
        assert rc == 0, err
        client = eng.client()
        left = [c["Names"][0] for c in client.api.containers(all=True)]
        remove_all(client)
        client.close()
        assert not left, f"containers left behind: {left}"
        check_outcome("dockerd restarted mid-run", out, reason="collector docker: lost")
    finally:
        eng.destroy()
