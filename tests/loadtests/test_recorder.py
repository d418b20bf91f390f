import io
import json

import numpy as np
import pytest

from labcap.loadtests.recorder import WindowRecorder
from labcap.model import build_plan
from tests.conftest import FakeClock


class _Journal(io.StringIO):
    """An in-memory journal with a real descriptor for the recorder's fsync."""

    def __init__(self, tmp_path):
        super().__init__()
        self._file = open(tmp_path / "fsync-target", "w")  # noqa: SIM115

    def fileno(self):
        return self._file.fileno()


@pytest.fixture
def journal(tmp_path):
    return _Journal(tmp_path)


def _rec(plan, clock, buf):
    return WindowRecorder(plan, buf, active_users=lambda: 7, clock=clock), buf


def test_windows_are_journaled_with_exact_percentiles(journal):
    plan = build_plan((3,), 10, settle_s=2, window_s=4, spawn_rate=1)
    clock = FakeClock()
    rec, buf = _rec(plan, clock, journal)
    rec.start()
    rng = np.random.default_rng(1)
    lat_ms = rng.lognormal(3, 0.7, 2000)
    for i, ms in enumerate(lat_ms):
        clock.t = 1000 + 2.0 + 3.99 * i / len(lat_ms)  # all in the first steady window [2, 6)
        rec.on_request("GET", "api.x", float(ms))
    clock.t = 1000 + 10
    rec.close("complete")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    windows = [r for r in lines if r["kind"] == "window"]
    assert [w["window_index"] for w in windows] == [1]  # only windows with requests get rows
    w = windows[0]
    assert w["requests"] == 2000 and w["failures"] == 0 and w["target_users"] == 3
    assert w["active_users"] == 7 and w["settling"] is False
    for q in (50, 95, 99):
        exact_us = np.percentile(lat_ms * 1000, q, method="inverted_cdf")
        assert w[f"p{q}_us"] == pytest.approx(exact_us, rel=2e-3)  # 3 significant digits
    assert w["p50_us"] <= w["p95_us"] <= w["p99_us"] <= w["max_us"]
    assert lines[-1] == {**lines[-1], "kind": "end", "status": "complete"}


def test_failures_are_counted_with_reason_and_kept_out_of_latency(journal):
    plan = build_plan((1,), 4, settle_s=1, window_s=4, spawn_rate=1)
    clock = FakeClock()
    rec, buf = _rec(plan, clock, journal)
    rec.start()
    clock.t = 1001.5
    rec.on_request("GET", "api.x", 5.0)
    rec.on_request("GET", "api.x", 9000.0, exception=ConnectionError("refused\nmore"))
    rec.on_request("GET", "api.x", 9000.0, exception=ConnectionError("refused\nmore"))
    clock.t = 1004
    rec.close("complete")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    win = next(r for r in lines if r["kind"] == "window")
    assert (win["requests"], win["failures"]) == (3, 2)
    assert win["max_us"] == pytest.approx(5000, rel=1e-3)  # the 9 s failures are not latency
    fail = next(r for r in lines if r["kind"] == "failure")
    assert fail["reason"] == "ConnectionError: refused" and fail["count"] == 2


def test_interrupted_run_flushes_the_open_window_cut_short(journal):
    plan = build_plan((1, 2), 10, settle_s=2, window_s=5, spawn_rate=1)
    clock = FakeClock()
    rec, buf = _rec(plan, clock, journal)
    rec.start()
    clock.t = 1003
    rec.on_request("GET", "a", 1.0)
    clock.t = 1004.25
    rec.close("interrupted", "SIGINT received")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    win = next(r for r in lines if r["kind"] == "window")
    assert win["end_s"] == pytest.approx(4.25) and win["requests"] == 1
    assert lines[-1]["status"] == "interrupted" and lines[-1]["reason"] == "SIGINT received"


def test_requests_after_the_plan_are_not_counted(journal):
    plan = build_plan((1,), 2, settle_s=1, window_s=1, spawn_rate=1)
    clock = FakeClock()
    rec, buf = _rec(plan, clock, journal)
    rec.start()
    clock.t = 1005
    rec.on_request("GET", "a", 1.0)
    assert rec.late_requests == 1 and rec.finished


@pytest.mark.parametrize("n,sigma", [(1, 0.3), (7, 1.0), (1000, 1.5), (20000, 4.0)])
def test_summary_equals_hdrh_own_walk(n, sigma):
    """The vectorised summary gives exactly hdrh's percentiles and mean (hdrh's own walk
    over every bucket took ~0.1 s per call and stalled the engine's event loop)."""
    from hdrh.histogram import HdrHistogram

    from labcap.histograms import histogram_summary, new_histogram

    h = new_histogram()
    for v in np.random.default_rng(n).lognormal(9, sigma, n):
        h.record_value(min(int(v) + 1, 3_600_000_000))
    h = HdrHistogram.decode(h.encode())  # as the planner sees it, after the journal
    s = histogram_summary(h)
    assert s["mean_us"] == h.get_mean_value() and s["max_us"] == h.get_max_value()
    for q in (50, 90, 95, 99):
        assert s[f"p{q}_us"] == h.get_value_at_percentile(q)


def test_preload_freezes_the_heap_so_full_collections_skip_it():
    import subprocess
    import sys

    code = (
        "import gc, time, locust, labcap.loadtests.engine\n"
        "from labcap.loadtests.recorder import preload\n"
        "preload()\n"
        "t = time.perf_counter(); gc.collect(2); ms = (time.perf_counter() - t) * 1000\n"
        "print(gc.get_freeze_count(), len(gc.get_objects()), ms)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    frozen, tracked, _ms = r.stdout.split()
    # Locust, gevent, numpy and labcap: tens of thousands of objects, all out of the GC's walk
    assert int(frozen) > 20_000 and int(tracked) < int(frozen) // 10, r.stdout
