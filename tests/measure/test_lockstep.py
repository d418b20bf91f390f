"""Lock-step detection: synthetic send patterns, then real Locust runs with and without jitter."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from labcap.loadtests.lockstep import SendClock, burst_stats, summarise
from labcap.model import build_plan, parse_slo
from labcap.runner import RunRequest, execute_run
from labcap.store import RunDir
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parent.parent / "support"


def _clock(times: list[float], duration_s: float) -> SendClock:
    c = SendClock(0.0, duration_s)
    for t in times:
        c.add(t)
    return c


def test_synchronised_batches_are_flagged():
    # 40 users, each sending once a second, all within 3 ms of each other
    rng = random.Random(1)
    times = [s + rng.uniform(0, 0.003) for s in range(5) for _ in range(40)]
    st = _clock(times, 5.0).stats()
    assert st.sends == 200
    assert st.burst_pct > 90
    assert st.lockstep


def test_independent_users_are_not_flagged():
    rng = random.Random(2)
    times = [rng.uniform(0, 5.0) for _ in range(200)]
    st = _clock(times, 5.0).stats()
    assert not st.lockstep
    assert st.burst_pct < 5


def test_one_users_back_to_back_journey_is_not_a_burst():
    # 10 users, each a 5-request journey (2 ms per answer) then ~2 s of thinking
    rng = random.Random(3)
    times = []
    for _user in range(10):
        t = rng.uniform(0, 2)
        while t < 10:
            times += [t + 0.002 * i for i in range(5)]
            t += 0.01 + rng.uniform(1, 3)
    st = _clock(times, 10.0).stats()
    assert not st.lockstep


def test_high_rate_uses_narrow_slots_and_stays_unflagged():
    rng = random.Random(4)
    times = [rng.uniform(0, 2.0) for _ in range(20000)]  # 10k sends/s, independent
    st = _clock(times, 2.0).stats()
    assert st.slot_ms == 1
    assert not st.lockstep


def test_too_few_sends_are_not_judged():
    st = burst_stats([10] + [0] * 999)
    assert st.sends == 10 and not st.lockstep


def test_summary_counts_flagged_windows():
    rows = [
        {"window_index": 1, "sends": 100, "burst_pct": 95.0, "lockstep": True},
        {"window_index": 2, "sends": 100, "burst_pct": 1.0, "lockstep": False},
        {"window_index": 3, "sends": 3, "burst_pct": 0.0, "lockstep": False},
    ]
    s = summarise(rows)
    assert s["flagged"] and s["windows_flagged"] == 1 and s["windows_judged"] == 2
    assert s["flagged_window_indexes"] == [1]
    assert not summarise(rows[1:])["flagged"]


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


def _paced_run(out: Path, url: str, *, jitter: bool) -> RunDir:
    # 40 paced users spawned within 40 ms: without jitter they send in step every second
    plan = build_plan((40,), 8.0, settle_s=3.0, window_s=2.5, spawn_rate=1000)
    req = RunRequest(
        out=out,
        scenario=str(SUPPORT / "locustfile_paced.py"),
        hosts={"default": url},
        plan=plan,
        slos=(parse_slo("p95_ms=1000"),),
        jitter=jitter,
    )
    result = execute_run(req, lambda msg: None)
    assert result.status == "complete", result.reasons
    return RunDir.open(out)


def test_real_run_in_lockstep_is_flagged(tmp_path, target):
    run = _paced_run(tmp_path / "sync", target, jitter=False)
    verdict = run.manifest["lockstep"]
    assert verdict["flagged"], verdict
    sends = pd.read_parquet(run.path / "sends.parquet")
    steady = sends[~sends["settling"]]
    assert steady["lockstep"].all()
    assert steady["sends"].sum() > 50


def test_real_run_with_default_jitter_is_not_flagged(tmp_path, target):
    run = _paced_run(tmp_path / "jitter", target, jitter=True)
    verdict = run.manifest["lockstep"]
    assert verdict["windows_judged"] >= 1
    assert not verdict["flagged"], verdict
