"""Live progress of `labcap run` (measure/live.py): a status line rewritten in place on a real
terminal (a tmux pane, captured), plain lines where stderr is not a terminal or with --quiet,
and the early stop of a run against a clearly broken target."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.cli import labcap, labcap_argv
from tests.support.servers import SUPPORT, loopback_server

LOCUSTFILE = str(SUPPORT / "locustfile_target.py")
STATUS_FIELDS = ("users", "active", "elapsed", "req/s", "errors", "p95")


def _run_args(url: str, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--host", url, "--scenario", LOCUSTFILE, "--step-duration", "6s",
        "--settle", "1s", "--window", "1s", "--no-calibrate", "--out", str(out), *extra,
    ]  # fmt: skip


class Tmux:
    """A private tmux server (its own socket) with one wide pane running a command."""

    def __init__(self) -> None:
        self.socket = f"labcap-test-{uuid.uuid4().hex[:8]}"

    def tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True)
        return r.stdout

    def start(self, argv: list[str], cwd: Path) -> None:
        env = f"PYTHONPATH={shlex.quote(os.environ.get('PYTHONPATH', ''))}"
        cmd = f"cd {shlex.quote(str(cwd))} && {env} {shlex.join(argv)}; echo LABCAP_EXIT=$?"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "220", "-y", "50", cmd)
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-J")

    def kill(self) -> None:
        self.tmux("kill-server")


def _record_session(argv: list[str], cwd: Path, limit_s: float = 120) -> list[str]:
    """Every distinct screen of a command's tmux pane, captured twice a second until it ends."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    pane = Tmux()
    screens: list[str] = []
    try:
        pane.start(argv, cwd)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            screen = pane.capture()
            if screen and (not screens or screens[-1] != screen):
                screens.append(screen)
            if "LABCAP_EXIT=" in screen:
                break
            time.sleep(0.5)
    finally:
        pane.kill()
    return screens


def _status_lines(screen: str) -> list[str]:
    return [ln for ln in screen.splitlines() if all(f in ln for f in STATUS_FIELDS)]


def test_a_terminal_shows_one_live_status_line_rewritten_in_place(tmp_path):
    with loopback_server("target_server.py") as url:
        argv = labcap_argv(*_run_args(url, tmp_path / "run", "--users", "1,2"))
        screens = _record_session(argv, tmp_path)
    final = screens[-1]
    assert "LABCAP_EXIT=0" in final, final
    live = [s for s in screens if _status_lines(s)]
    assert live, "no screen showed the live status line:\n" + final
    # one status line at a time, never a trail of them, and never the plain form
    assert all(len(_status_lines(s)) == 1 for s in live)
    assert not any("status:" in s for s in screens)
    shown = {_status_lines(s)[0] for s in live}
    assert len(shown) >= 3  # it was rewritten as the run went on
    first = next(iter(sorted(shown)))
    assert first.startswith("step ") and " left " in first + " "
    assert any(line.startswith("step 2/2 | 2 users") for line in shown)
    assert not _status_lines(final)  # cleared at the end: the plan's lines follow
    assert "run complete" in final


def test_a_terminal_shows_the_searchs_probes_live(tmp_path):
    with loopback_server("target_server.py") as url:
        argv = labcap_argv(*_run_args(url, tmp_path / "run", "--users", "auto", "--max-users", "4"))
        screens = _record_session(argv, tmp_path)
    final = screens[-1]
    assert "LABCAP_EXIT=0" in final, final
    shown = {ln for s in screens for ln in _status_lines(s)}
    assert any(line.startswith("probe 1 | 1 users") for line in shown), shown
    assert all("search: each probe ends once clear" in line for line in shown)
    assert "users 1, 1, 1" not in final and "first failing None" not in final
    assert "adaptive search up to 4 users" in final
    assert "no probe failed up to --max-users 4" in final
    assert "Rerun with a higher --max-users (the search stopped at 4)" in final


def test_without_a_terminal_or_with_quiet_stderr_gets_plain_lines(tmp_path):
    with loopback_server("target_server.py") as url:
        plain = labcap(*_run_args(url, tmp_path / "a", "--users", "1"))
        quiet = labcap(*_run_args(url, tmp_path / "b", "--users", "1", "--quiet"))
    for r in (plain, quiet):
        assert r.returncode == 0, r.stderr
        assert "\r" not in r.stderr and "\x1b[" not in r.stderr
        assert all(line.startswith("labcap: ") for line in r.stderr.splitlines())
        assert "step 1/1 done" in r.stderr
    status = [ln for ln in plain.stderr.splitlines() if ln.startswith("labcap: status: ")]
    assert status and all(f in status[0] for f in STATUS_FIELDS)
    assert "status:" not in quiet.stderr


@pytest.fixture
def broken_target():
    """A loopback target whose every answer is a 503."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_clearly_broken_target_stops_the_run_after_its_first_step(tmp_path, broken_target):
    out = tmp_path / "run"
    r = labcap(*_run_args(broken_target, out, "--users", "1,2,3,4", "-v"))
    assert r.returncode == 3  # an invalid run (labcap.planner.exit_codes)
    early = [ln for ln in r.stderr.splitlines() if "stopping the run early" in ln]
    assert len(early) == 1 and "step 1/4 (1 users): 100 % of" in early[0]
    assert "503" in early[0] and "the target looks broken" in early[0]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("labcap: run invalid: stopped early: step 1/4")
    assert "step 4/4" not in r.stderr  # the rest of the ladder never ran
    assert "window 0 (settling)" in r.stderr  # -v: a line per endpoint and window
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["status_reasons"][0].startswith("stopped early: step 1/4 (1 users)")


def test_the_status_line_from_a_recorded_journal(tmp_path):
    """The monitor's figures from a journal as the engine writes it (no terminal needed)."""
    import io

    from labcap.measure.live import Console, LiveMonitor

    journal = tmp_path / "journal.jsonl"
    (tmp_path / ".engine.json").write_text(
        json.dumps({"load": {"steps": [{"duration_s": 10}, {"duration_s": 10}]}})
    )
    rows = [
        {"kind": "start", "t0_unix": time.time() - 3},
        {"kind": "step", "step_index": 0, "users": 5},
        {"kind": "window", "window_index": 0, "step_index": 0, "start_s": 0, "end_s": 2,
         "active_users": 5, "requests": 40, "failures": 4, "hdr": ""},
    ]  # fmt: skip
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stream = io.StringIO()
    console = Console(stream, live=False)
    assert LiveMonitor(console)(journal) is None
    line = stream.getvalue().strip()
    assert line.startswith("labcap: status: step 1/2 | 5 users | 5 active | 0:03 elapsed")
    assert "20.0 req/s" in line and "errors 4 (10.0 %)" in line and "p95 n/a" in line
