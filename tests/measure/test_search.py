"""Adaptive capacity search: the probe sequence, then a real search on the queueing target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labcap.planner.search_controller import SearchSettings, next_users
from tests.support.queue_server import saturation_users
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parent.parent / "support"
WORKERS, SERVICE_S, THINK_S = 4, 0.150, 1.350  # N* = 40 (tests/planner/test_capacity_queueing)


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


def test_grows_faster_after_a_wide_margin_pass():
    s = SearchSettings(max_users=64)
    assert next_users(s, 8, None) == 16
    assert next_users(s, 8, None, wide_margin=True) == 32
    assert next_users(s, 32, None, wide_margin=True) == 64  # never past the maximum


def test_narrows_the_bracket_at_the_knee_estimate():
    s = SearchSettings(max_users=64)
    # the estimate inside the bracket is the next probe (bisection would take 48)
    assert next_users(s, 32, 64, estimate=40.3) == 40
    # at, below or just above the passing count: one resolution step above it, so the
    # probe closes the bracket if it fails (44 - 40 <= 10 % of 40)
    assert next_users(s, 40, 64, estimate=40.0) == 44
    assert next_users(s, 40, 64, estimate=12.0) == 44
    assert next_users(s, 41, 64, estimate=41.7) == 45
    assert next_users(s, 41, 45, estimate=41.7) is None
    # at or beyond the failing count, or no estimate: the midpoint
    assert next_users(s, 32, 64, estimate=80.0) == 48
    assert next_users(s, 32, 64) == 48
    # within resolution: done, whatever the estimate says
    assert next_users(s, 40, 44, estimate=42.0) is None
    # the first probe failed: nothing passed, no cycle time, bisect down
    assert next_users(s, None, 8, estimate=5.0) == 4


def test_a_wrong_estimate_costs_probes_never_the_answer():
    """Whatever the estimates say, the search ends within resolution of the true capacity."""
    import random

    rng = random.Random(7)
    for cap in (5, 17, 40, 77, 150, 999):
        s = SearchSettings(max_users=1000, start_users=10)
        passed = failed = None
        for _ in range(40):
            est = rng.uniform(0, 2000)
            u = next_users(s, passed, failed, estimate=est if failed else None,
                           wide_margin=rng.random() < 0.5)  # fmt: skip
            if u is None:
                break
            assert (passed or 0) < u and (failed is None or u < failed)
            passed, failed = (u, failed) if u <= cap else (passed, u)
        else:
            raise AssertionError("the search did not end")
        assert (passed or 0) <= cap
        if failed is not None:
            assert failed - (passed or 0) <= max(1, 0.1 * (passed or 0))


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


def _run_search(queue_target: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable, "-m", "labcap.cli", "run", "--host", queue_target,
            "--scenario", str(SUPPORT / "locustfile_queue.py"),
            "--users", "auto", "--max-users", "64",
            "--step-duration", "7s", "--settle", "3s", "--window", "2s", "--spawn-rate", "60",
            "--slo", f"p95_ms={2 * SERVICE_S * 1000:g}", "--slo", "error_pct=1",
            "--no-calibrate", "--out", str(out), "--json", *extra,
        ],
        capture_output=True, text=True, timeout=400,
        env={
            **os.environ,
            "LABCAP_QUEUE_THINK_S": str(THINK_S),
            "LABCAP_QUEUE_CYCLE_S": str(SERVICE_S + THINK_S),
        },
    )  # fmt: skip


def test_search_on_a_target_of_known_capacity(tmp_path, queue_target):
    out = tmp_path / "search"
    r = _run_search(queue_target, out)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    search = json.loads((out / "manifest.json").read_text())["search"]
    probes = search["probes"]
    # every probe recorded, in the order it ran (one load engine: users change step by step)
    assert [p["order"] for p in probes] == list(range(1, len(probes) + 1))
    assert probes[0]["users"] == 8 and probes[0]["chosen"] == "first probe"
    assert all(p["wall_s"] > 0 and p["verdict"] in ("pass", "fail") for p in probes)
    # after the first failure the bracket narrows at the operational-law knee estimate
    # (N* = X_max x cycle time), which the probe records with its figures
    first_fail = next(i for i, p in enumerate(probes) if p["verdict"] == "fail")
    assert "knee estimate" in probes[first_fail + 1]["chosen"], probes
    # a probe ended as soon as its verdict was clear is shorter than its step
    early = [p for p in probes if p["stopped_early"] or p["passed_early"]]
    assert early and all(p["wall_s"] < 6.9 for p in early), probes
    passes = [p["users"] for p in probes if p["verdict"] == "pass"]
    fails = [p["users"] for p in probes if p["verdict"] == "fail"]
    assert fails and max(passes) < min(fails)
    # collector samples lie on the probe that was running when they were taken (each step's
    # real start is journalled: early-ended probes move every later one forward of the plan),
    # numbered like the windows: the probe's place in the ladder
    import itertools

    import pandas as pd

    host = pd.read_parquet(out / "host_samples.parquet").sort_values("t_s")
    seen = [k for k, _ in itertools.groupby(host["step_index"]) if k >= 0]
    ladder = sorted(p["users"] for p in probes)
    assert seen == [ladder.index(p["users"]) for p in probes], (seen, probes)
    # each probe ran for its wall_s, one after the other from the run's start: a sample taken
    # well inside a probe's stretch of time (1 s from either end) is that probe's
    ends = list(itertools.accumulate(p["wall_s"] for p in probes))
    checked = 0
    for t, k in zip(host["t_s"], host["step_index"], strict=True):
        for p, end in zip(probes, ends, strict=True):
            if end - p["wall_s"] + 1.0 <= t <= end - 1.0:
                assert k == ladder.index(p["users"]), (t, k, probes)
                checked += 1
    assert checked >= len(probes), checked
    # the assembled run is a ladder of the probes; plan reads it like any run
    assert [s["users"] for s in plan["steps"]] == sorted(p["users"] for p in probes)
    assert plan["capacity"]["max_users_at_slo"] == search["max_users_at_slo"] == max(passes)
    # the planned steps the search did not need are not "missing", also when read back
    from labcap.store import RunDir

    manifest = RunDir.open(out).manifest
    assert all(f["check"] != "missing-steps" for f in manifest["validity"]["findings"])
    assert not [r for r in manifest["status_reasons"] if "planned steps" in r], manifest
    # lock-step windows are named like the windows table's (the ladder's numbering)
    sends = pd.read_parquet(out / "sends.parquet")
    judged = sends[~sends["settling"] & (sends["sends"] >= 50)]
    flagged = sorted(int(i) for i in judged[judged["lockstep"]]["window_index"])
    assert manifest["lockstep"]["flagged_window_indexes"] == flagged[:50], manifest["lockstep"]
    assert f"run {manifest['status']}" in r.stderr.splitlines()[-1], r.stderr
    # queueing theory: N* = 40; the SLO breaks between N* and N* + k (planner/)
    n_star = saturation_users(WORKERS, SERVICE_S, THINK_S)
    assert 0.85 * n_star <= search["max_users_at_slo"] <= 1.15 * n_star, search
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", str(out)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    html = (out / "report.html").read_text()
    assert 'id="search"' in html and "Adaptive search path" in html


def test_search_with_two_locust_workers(tmp_path, queue_target):
    import pandas as pd

    out = tmp_path / "search"
    r = _run_search(queue_target, out, "--workers", "2")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    probes = manifest["search"]["probes"]
    # both workers carried every probe: their windows merged, none late or missing
    assert sorted(manifest["generator"]["per_worker"]) == ["w1", "w2"]
    assert not [x for x in manifest["status_reasons"] if "workers sent no data" in x]
    # a probe ended early moved the workers' clocks too: its windows (and every later one)
    # closed with the master's, each step holding the users its probe chose
    early = [p for p in probes if p["stopped_early"] or p["passed_early"]]
    assert early and all(p["wall_s"] < 6.9 for p in early), probes
    w = pd.read_parquet(out / "windows.parquet")
    held = w.groupby("step_index")["target_users"].unique()
    assert [list(u) for u in held] == [[u] for u in sorted(p["users"] for p in probes)]
    steady = w[~w["settling"]].groupby("step_index")["requests"].sum()
    assert (steady > 0).all(), steady
    n_star = saturation_users(WORKERS, SERVICE_S, THINK_S)
    assert 0.85 * n_star <= manifest["search"]["max_users_at_slo"] <= 1.15 * n_star, probes


def test_users_auto_needs_max_users(queue_target):
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "run", "--host", queue_target, "--users", "auto"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "--users auto and --max-users N go together" in r.stderr


def test_one_noisy_window_does_not_end_a_probe_two_in_a_row_do():
    from types import SimpleNamespace

    from labcap.planner.search_controller import SearchController
    from labcap.slo import parse_slo

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


def test_a_probe_passes_early_only_by_a_wide_margin_on_enough_requests():
    from types import SimpleNamespace

    from labcap.histograms import new_histogram, record_values
    from labcap.planner.search_controller import SearchController
    from labcap.slo import parse_slo

    def series(ms: float, requests: int, failures: int = 0) -> dict:
        h = new_histogram()
        record_values(h, [int(ms * 1000)] * (requests - failures))
        return {("api", "GET"): [h, requests, failures]}

    def ctl() -> SearchController:
        c = SearchController(
            SearchSettings(max_users=64), (parse_slo("p95_ms=300"), parse_slo("error_pct=1"))
        )
        c.next_users()
        return c

    w = SimpleNamespace(index=3, settling=False)
    assert "within 1/1.5" in ctl().clear_pass(w, series(150, 40))  # p95 at half the SLO
    assert ctl().clear_pass(w, series(150, 10)) is None  # too few requests to tell
    assert ctl().clear_pass(w, series(250, 40)) is None  # passing, but near the SLO
    assert ctl().clear_pass(w, series(150, 100, failures=1)) is None  # 1 % failed: near
    assert ctl().clear_pass(SimpleNamespace(index=1, settling=True), series(150, 40)) is None
    c = ctl()
    c.clear_pass(w, series(150, 40))
    c.probes[-1]["steady_s"] = 2.0
    c.step_result(series(150, 40))
    assert c.probes[-1]["verdict"] == "pass" and c.probes[-1]["rps"] == 20.0
    assert c.next_users() == 32  # a wide-margin pass: grow x4


def test_binomial_tail_is_exact():
    from math import comb

    from labcap.planner.search_controller import binomial_tail

    for n, k, p in [(50, 0, 0.05), (50, 3, 0.05), (50, 12, 0.05), (200, 30, 0.1), (7, 7, 0.5),
                    (1000, 80, 0.05), (30, 31, 0.2), (40, 2, 0.0), (40, 2, 1.0)]:  # fmt: skip
        exact = sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert abs(binomial_tail(n, k, p) - exact) <= 1e-12 + 1e-9 * exact, (n, k, p)


def test_count_above_counts_only_values_surely_over_the_limit():
    import random

    from labcap.histograms import count_above, new_histogram, record_values

    rnd = random.Random(8)
    values = [rnd.randint(1, 2_000_000) for _ in range(5000)]
    h = new_histogram()
    record_values(h, values)
    for limit in (1, 999, 150_000, 300_000, 1_999_999):
        low = sum(v > h.get_highest_equivalent_value(limit) for v in values)
        assert low <= count_above(h, limit) <= sum(v > limit for v in values)


def test_a_probe_fails_early_when_its_data_breaks_an_slo_beyond_chance():
    from types import SimpleNamespace

    from labcap.histograms import new_histogram, record_values
    from labcap.planner.search_controller import SearchController, confident_breach
    from labcap.slo import parse_slo

    def series(fast: int, slow: int, failures: int = 0) -> dict:
        h = new_histogram()
        record_values(h, [100_000] * fast + [400_000] * slow)  # 100 ms and 400 ms
        return {("api", "GET"): [h, fast + slow + failures, failures]}

    p95, err = (parse_slo("p95_ms=300"),), (parse_slo("error_pct=1"),)
    # 5 % above 300 ms is what p95 <= 300 allows: 3 of 50 is chance, 12 of 50 is not
    assert confident_breach(series(47, 3), p95, 0.999) is None
    assert "12 of 50 requests took over 300 ms" in confident_breach(series(38, 12), p95, 0.999)
    # the empirical p95 of 6 slow in 100 is over 300 ms, but that is within chance
    assert confident_breach(series(94, 6), p95, 0.999) is None
    assert confident_breach(series(50, 1), (parse_slo("max_ms=300"),), 0.999) is not None
    assert confident_breach(series(100, 0, failures=2), err, 0.999) is None
    assert "10 of 110 requests failed" in confident_breach(series(100, 0, failures=10), err, 0.999)

    ctl = SearchController(SearchSettings(max_users=64), p95)
    ctl.next_users()
    w = SimpleNamespace(index=3, settling=False)
    rec = {"endpoint": "api", "method": "GET", "requests": 50, "failures": 0, "p95_us": 400_000}
    assert ctl.clear_fail(w, [rec], series(8, 4)) is None  # too few requests to tell
    assert ctl.clear_fail(w, [rec], series(47, 3)) is None
    why = ctl.clear_fail(w, [rec], series(38, 12))
    assert why.startswith("window 3: api: 12 of 50") and ctl.probes[-1]["stopped_early"] == why


def test_lockstep_window_numbers_follow_the_probes_into_the_ladder():
    from labcap.measure.search import ladder_windows

    # probes ran as steps 0, 1, 2 (users 8, 64, 40): the ladder puts them at 0, 2, 1;
    # 4 windows a step; step 3 was planned but never ran
    place = {0: 0, 1: 2, 2: 1}
    assert ladder_windows([1, 5, 6, 9, 13], place, 4) == [1, 5, 9, 10]  # 9 -> 5, 5 -> 9
    assert ladder_windows([7, 10], place, 4) == [10 - 4, 7 + 4]
