"""A Locust LoadTestShape in a user's locustfile is refused with one line, never silently
dropped: labcap sets the load itself (--users, --step-duration)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.cli import labcap
from tests.support.servers import SUPPORT, loopback_server


def test_a_load_test_shape_is_refused_with_one_line_before_any_load(tmp_path):
    out = tmp_path / "run"
    with loopback_server("target_server.py") as url:
        r = labcap(
            "run", "--host", url, "--scenario", SUPPORT / "locustfile_shape.py", "--users", "1",
            "--step-duration", "2s", "--no-calibrate", "--out", out,
        )  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert (
        lines[0].startswith("labcap: error: scenario ") and "LoadTestShape (RampShape)" in lines[0]
    )
    assert "labcap does not run it" in lines[0] and "--users" in lines[0]
    assert not out.exists()  # refused before any run directory or load


def test_the_engine_refuses_a_shape_too():
    """Past the preflight (a file changed in between), the engine still never drops it; in a
    child process, as Locust (gevent) is imported only where load runs."""
    code = (
        "import json, sys; from labcap.loadtests.engine import load_user_classes\n"
        "try:\n"
        f"    load_user_classes({{'scenario': {{'path': {str(SUPPORT / 'locustfile_shape.py')!r}}},"
        " 'hosts': {}})\n"
        "except ValueError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "LoadTestShape (RampShape): not run" in r.stdout
