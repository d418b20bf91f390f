"""Lock-step detection: synthetic send patterns, then real Locust runs with and without jitter."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from labcap.loadtests.lockstep import SendClock, burst_stats, summarise
from labcap.measure.run import RunRequest, execute_run
from labcap.model import build_plan
from labcap.slo import parse_slo
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


def _recorder(plan):
    """A recorder on a hand-driven clock (``clock[0]``), journalling into a StringIO."""
    import io

    from labcap.loadtests.recorder import WindowRecorder

    journal = io.StringIO()
    journal.fileno = lambda: -1  # type: ignore[method-assign]
    clock = [0.0]
    rec = WindowRecorder(plan, journal, clock=lambda: clock[0], sync=lambda fd: None)
    rec.t0 = 0.0
    return rec, journal, clock


def test_one_users_back_to_back_journey_is_not_a_burst():
    # 10 users, each a 5-request journey (2 ms per answer) then ~2 s of thinking: the
    # recorder counts one send per user per 100 ms, so a journey is not a burst
    rec, journal, clock = _recorder(
        build_plan((10,), 10.0, settle_s=0.5, window_s=9.5, spawn_rate=10)
    )
    rng = random.Random(3)
    events = []
    for user in range(10):
        t = rng.uniform(0.5, 2)
        while t < 9.9:
            events += [(t + 0.002 * (i + 1), user) for i in range(5)]
            t += 0.01 + rng.uniform(1, 3)
    for t, user in sorted(events):
        clock[0] = t
        rec.on_request("GET", "api", 2.0, context={"labcap_user": user})
    clock[0] = 10.0
    rec.advance()
    import json

    sends = [json.loads(ln) for ln in journal.getvalue().splitlines() if '"sends"' in ln]
    steady = [s for s in sends if not s["settling"]][0]
    assert steady["sends"] * 5 == sum(1 for t, _ in events if t >= 0.5)
    assert not steady["lockstep"]
    # the same sends without user identity: every journey is a burst of 5
    times = [t for t, _ in events]
    assert _clock(times, 10.0).stats().burst_pct > 50


def test_a_slow_saturated_target_is_not_lock_step():
    # a closed loop past its knee (tests/support/queue_server.py, 56 users): one send every
    # 37.5 ms, each answered 755 ms later, so a third of a window's answers were sent in the
    # window before; their sends must count there, not pile up at this window's start
    import json

    rec, journal, clock = _recorder(
        build_plan((56,), 12.0, settle_s=2.0, window_s=2.0, spawn_rate=100)
    )
    for i in range(int(11.2 / 0.0375)):
        clock[0] = i * 0.0375 + 0.755
        rec.on_request("GET", "queue.get", 755.0, context={"labcap_user": i % 56})
    clock[0] = 12.0
    rec.advance()
    sends = [json.loads(ln) for ln in journal.getvalue().splitlines() if '"sends"' in ln]
    assert sorted(s["window_index"] for s in sends) == [w.index for w in rec.plan.windows]
    steady = [s for s in sends if not s["settling"]]
    # each send counted in the window it left in: 2 s / 37.5 ms, so every full one is judged
    assert len(steady) == 5 and all(52 <= s["sends"] <= 54 for s in steady[:4])
    assert not any(s["lockstep"] for s in steady)


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
    # 20 paced users spawned at once: without jitter they send in step every second
    plan = build_plan((20,), 8.0, settle_s=3.0, window_s=2.5, spawn_rate=10_000)
    req = RunRequest(
        out=out,
        scenario=str(SUPPORT / "locustfile_paced.py"),
        hosts={"default": url},
        plan=plan,
        slos=(parse_slo("p95_ms=1000"),),
        jitter=jitter,
    )
    result = execute_run(req, lambda msg: None)
    # a run in lock-step may be judged partial for it (labcap.validity); nothing else
    assert result.status == "complete" or all("lock" in r for r in result.reasons), result.reasons
    return RunDir.open(out)


def test_real_run_in_lockstep_is_flagged(tmp_path, target):
    run = _paced_run(tmp_path / "sync", target, jitter=False)
    verdict = run.manifest["lockstep"]
    assert verdict["flagged"], verdict
    sends = pd.read_parquet(run.path / "sends.parquet")
    steady = sends[~sends["settling"]]
    assert steady["lockstep"].any()
    assert steady["sends"].sum() > 50


def test_real_run_with_default_jitter_is_not_flagged(tmp_path, target):
    run = _paced_run(tmp_path / "jitter", target, jitter=True)
    verdict = run.manifest["lockstep"]
    assert verdict["windows_judged"] >= 1
    assert not verdict["flagged"], verdict


def test_small_groups_released_by_a_saturated_target_are_not_lockstep():
    # 64 users behind 4 server threads: every 150 ms the 4 threads free 4-6 users at once
    rng = random.Random(5)
    times = [k * 0.15 + rng.uniform(0, 0.002) for k in range(40) for _ in range(rng.choice((4, 6)))]
    c = _clock(times, 6.0)
    assert c.stats().lockstep  # bursty indeed, when the number of users is unknown
    assert not c.stats(users=64).lockstep  # but a burst of 5 is not a spawn batch of 64
