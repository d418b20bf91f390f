"""Adaptive capacity search: the probe sequence, then a real search on the queueing target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labcap.planner.search import SearchSettings, next_users
from tests.support.queue_server import saturation_users
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parent.parent / "support"
WORKERS, SERVICE_S, THINK_S = 4, 0.150, 1.350  # N* = 40 users (tests/test_queueing.py)


def _search(capacity: int, settings: SearchSettings) -> list[int]:
    probes, passed, failed = [], None, None
    while (u := next_users(settings, passed, failed)) is not None:
        probes.append(u)
        if u <= capacity:
            passed = u
        else:
            failed = u
        assert len(probes) < 40
    return probes


def test_grows_geometrically_then_bisects():
    s = SearchSettings(max_users=64)
    assert _search(40, s) == [8, 16, 32, 64, 48, 40, 44]
    assert _search(100, s) == [8, 16, 32, 64]  # never failed: stops at the maximum
    assert _search(3, s) == [8, 4, 2, 3]  # the first probe failed: bisect down from it
    assert _search(0, SearchSettings(max_users=8)) == [1]


def test_stops_within_resolution_of_the_answer():
    for cap in (5, 17, 40, 77, 150, 999):
        s = SearchSettings(max_users=1000, start_users=10)
        probes = _search(cap, s)
        lo = max([u for u in probes if u <= cap], default=0)
        hi = min([u for u in probes if u > cap], default=None)
        assert lo <= cap
        if hi is not None:
            assert hi - lo <= max(1, 0.1 * lo)


@pytest.fixture(scope="module")
def queue_target():
    with loopback_server("queue_server.py", str(WORKERS), str(SERVICE_S * 1000)) as url:
        yield url


def test_search_on_a_target_of_known_capacity(tmp_path, queue_target):
    out = tmp_path / "search"
    r = subprocess.run(
        [
            sys.executable, "-m", "labcap.cli", "run", "--host", queue_target,
            "--scenario", str(SUPPORT / "locustfile_queue.py"),
            "--users", "auto", "--max-users", "64",
            "--step-duration", "7s", "--settle", "3s", "--window", "2s", "--spawn-rate", "60",
            "--slo", f"p95_ms={2 * SERVICE_S * 1000:g}", "--slo", "error_pct=1",
            "--no-calibrate", "--out", str(out), "--json",
        ],
        capture_output=True, text=True, timeout=400,
        env={
            **os.environ,
            "LABCAP_QUEUE_THINK_S": str(THINK_S),
            "LABCAP_QUEUE_CYCLE_S": str(SERVICE_S + THINK_S),
        },
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    search = json.loads((out / "manifest.json").read_text())["search"]
    probes = search["probes"]
    # every probe recorded, in the order it ran (one load engine: users change step by step)
    assert [p["order"] for p in probes] == list(range(1, len(probes) + 1))
    assert [p["users"] for p in probes[:3]] == [8, 16, 32]
    assert all(p["wall_s"] > 0 and p["verdict"] in ("pass", "fail") for p in probes)
    passes = [p["users"] for p in probes if p["verdict"] == "pass"]
    fails = [p["users"] for p in probes if p["verdict"] == "fail"]
    assert fails and max(passes) < min(fails)
    # the assembled run is a ladder of the probes; plan reads it like any run
    assert [s["users"] for s in plan["steps"]] == sorted(p["users"] for p in probes)
    assert plan["capacity"]["max_users_at_slo"] == search["max_users_at_slo"] == max(passes)
    # queueing theory: N* = 40; the SLO breaks between N* and N* + k (tests/test_queueing.py)
    n_star = saturation_users(WORKERS, SERVICE_S, THINK_S)
    assert 0.85 * n_star <= search["max_users_at_slo"] <= 1.15 * n_star, search
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    html = (out / "report.html").read_text()
    assert 'id="search"' in html and "Adaptive search path" in html


def test_users_auto_needs_max_users(queue_target):
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "run", "--host", queue_target, "--users", "auto"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "--users auto and --max-users N go together" in r.stderr


def test_one_noisy_window_does_not_end_a_probe_two_in_a_row_do():
    from types import SimpleNamespace

    from labcap.model import parse_slo
    from labcap.planner.search import SearchController

    ctl = SearchController(SearchSettings(max_users=64), (parse_slo("p95_ms=300"),))

    def window(i: int, p95_ms: float) -> str | None:
        w = SimpleNamespace(index=i, settling=False)
        rec = {"endpoint": "api", "method": "GET", "requests": 50, "failures": 0,
               "p95_us": p95_ms * 1000}  # fmt: skip
        return ctl.clear_fail(w, [rec])

    assert ctl.next_users() == 8
    assert window(2, 500) is None  # 1.7x once: maybe noise
    assert window(3, 250) is None
    assert window(4, 500) is None
    assert "over 1.5x" in window(5, 480)  # twice in a row: a clear fail
    ctl.step_result({})  # this probe failed
    assert ctl.next_users() == 4  # the next one starts afresh
    assert window(9, 1000) is not None  # 3.3x: at once
