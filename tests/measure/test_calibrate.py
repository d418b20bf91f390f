"""Calibration: measured for real against labcap's own loopback target, stored, shown, used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcap.planner.capacity import plan_run
from tests.support.cli import labcap
from tests.support.servers import loopback_server

LOCUSTFILE = Path(__file__).parent.parent / "support" / "locustfile_target.py"
FLOOR_KEYS = ("floor_p50_ms", "floor_p95_ms", "floor_p99_ms")


def test_calibrate_json_measures_floor_and_ceiling():
    r = labcap("calibrate", "--json")
    assert r.returncode == 0, r.stderr
    cal = json.loads(r.stdout)
    assert cal["floor_requests"] > 100  # ~200 req/s for 2 s
    assert cal["failed_requests"] == 0
    assert 0 < cal["floor_p50_ms"] <= cal["floor_p95_ms"] <= cal["floor_p99_ms"]
    assert cal["floor_p99_ms"] <= cal["floor_max_ms"]
    # labcap's own client, measured alike: timed to the kernel's receipt, it adds less
    assert cal["wire_floor_requests"] > 100
    assert 0 < cal["wire_floor_p50_ms"] <= cal["wire_floor_p99_ms"] <= cal["wire_floor_max_ms"]
    assert cal["wire_floor_p50_ms"] < cal["floor_p50_ms"]
    # a real generator: hundreds of requests per second at least, and some CPU for them
    assert cal["ceiling_rps"] > 100
    assert 0 < cal["ceiling_cpu_pct"] <= 110
    assert cal["ceiling_rps_per_core"] >= cal["ceiling_rps"] * 0.9
    assert "trivial loopback target" in cal["method"]


def test_calibrate_text_names_floor_and_ceiling():
    r = labcap("calibrate")
    assert r.returncode == 0, r.stderr
    assert "generator floor (added latency): p50" in r.stdout
    assert "generator ceiling:" in r.stdout
    assert "WireHttpUser floor: p50" in r.stdout


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


def test_run_calibrates_first_and_the_report_shows_the_floor(tmp_path, target):
    out = tmp_path / "run"
    args = ["--users", "2", "--step-duration", "3s", "--settle", "1s", "--window", "1s"]
    r = labcap(
        "run", "--host", target, "--scenario", str(LOCUSTFILE), *args, "--out", str(out), "--json"
    )
    assert r.returncode == 0, r.stderr
    assert "calibrating the load generator" in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    cal = manifest["calibration"]
    assert all(cal[k] > 0 for k in FLOOR_KEYS)
    assert cal["floor_client"] == "http"  # the locustfile's users are HttpUsers
    r = labcap("report", str(out))
    assert r.returncode == 0, r.stderr
    html = (out / "report.html").read_text()
    assert 'id="generator-floor"' in html
    assert f"{cal['floor_p99_ms']:.3f}" in html
    assert 'id="wire-floor"' in html and f"{cal['wire_floor_p99_ms']:.3f}" in html


def test_run_no_calibrate_skips_it(tmp_path, target):
    out = tmp_path / "run"
    args = ["--users", "1", "--step-duration", "2s", "--settle", "1s", "--window", "1s"]
    r = labcap(
        "run",
        "--host",
        target,
        "--scenario",
        str(LOCUSTFILE),
        *args,
        "--out",
        str(out),
        "--no-calibrate",
    )
    assert r.returncode == 0, r.stderr
    assert "calibrating" not in r.stderr
    assert json.loads((out / "manifest.json").read_text())["calibration"] is None


def _with_calibration(run: Path, **floor: float) -> Path:
    m = json.loads((run / "manifest.json").read_text())
    m["calibration"] = {
        "floor_p50_ms": 0.1,
        "floor_p90_ms": 0.2,
        "floor_p95_ms": 0.3,
        "floor_p99_ms": 0.5,
        "floor_max_ms": 1.0,
        **floor,
    }
    (run / "manifest.json").write_text(json.dumps(m))
    return run


def test_breach_within_the_generator_floor_is_not_called(tmp_path, recorded_run):
    # p95 of 1.2 ms against an SLO of 1 ms: 0.2 ms over, the generator's p95 floor is 0.3 ms
    lat = {"api.get": [1.2] * 100}
    run = recorded_run(tmp_path / "r", {5: lat, 10: lat}, slos=["p95_ms=1"])
    assert plan_run(str(run)).max_users_at_slo == 0  # uncalibrated: a breach from step one
    plan = plan_run(str(_with_calibration(run)))
    assert plan.max_users_at_slo == 10 and not plan.limit_reached
    check = plan.steps[0].checks[0]
    assert check.ok and check.within_noise and check.noise_ms == 0.3
    assert "within the generator's noise" in plan.verdict


def test_breach_beyond_the_floor_is_still_a_breach(tmp_path, recorded_run):
    lat = {"api.get": [1.2] * 100}
    run = recorded_run(tmp_path / "r", {5: lat, 10: lat}, slos=["p95_ms=1"])
    plan = plan_run(str(_with_calibration(run, floor_p95_ms=0.1)))
    assert plan.max_users_at_slo == 0 and plan.limit_reached
    assert not plan.steps[0].checks[0].within_noise
    assert "generator's noise" not in plan.verdict


def test_a_wire_run_is_judged_against_the_wire_floor(tmp_path, recorded_run):
    # the same 0.2 ms over: within the scenarios' (HttpUser) floor of 0.3 ms, beyond the
    # WireHttpUser floor of 0.05 ms that applies when every user is built on WireHttpUser
    lat = {"api.get": [1.2] * 100}
    run = recorded_run(tmp_path / "r", {5: lat, 10: lat}, slos=["p95_ms=1"])
    plan = plan_run(str(_with_calibration(run, wire_floor_p95_ms=0.05, floor_client="http")))
    assert plan.max_users_at_slo == 10
    plan = plan_run(str(_with_calibration(run, wire_floor_p95_ms=0.05, floor_client="wire")))
    assert plan.max_users_at_slo == 0 and not plan.steps[0].checks[0].within_noise
