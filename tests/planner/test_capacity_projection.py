"""Capacity model extras on synthetic runs with known answers: per-SLO, knee, projection."""

from __future__ import annotations

import math

import pytest

from labcap.planner.capacity import StepVerdict, find_knee, months_until, plan_run, project


def latencies(base: float, p95: float, p99: float, n: int = 200) -> list[float]:
    """``n`` latencies, evenly interleaved so that any 80 % of them keeps the shape:
    of every 50, 40 at ``base``, 9 at ``p95`` and 1 at ``p99``: p95 = ``p95``, p99 = ``p99``.
    """
    block = [base] * 40 + [p95] * 9 + [p99]
    return [block[i % 50] for i in range(n)]


def test_p95_crossing_between_40_and_50_users(tmp_path, recorded_run):
    # p95 grows with users (10 ms per user) and crosses 450 ms between 40 and 50 users;
    # p99 (20 ms per user) crosses its 1100 ms between 50 and 60.
    steps = {u: {"api.a": latencies(5.0, 10.0 * u, 20.0 * u)} for u in (10, 20, 30, 40, 50, 60)}
    run = recorded_run(tmp_path / "r", steps, slos=["p95_ms=450", "p99_ms=1100", "error_pct=1"])
    plan = plan_run(str(run))
    assert 40 <= plan.max_users_at_slo < 50 and plan.band == (40, 50)
    assert [c.slo for c in plan.binding] == ["p95_ms=450"]
    per = {c.slo: c for c in plan.per_slo}
    assert plan.per_slo[0].slo == "p95_ms=450"  # binds first
    assert per["p95_ms=450"].max_users == 40 and per["p95_ms=450"].first_failing_users == 50
    assert per["p95_ms=450"].measured_at_failure == pytest.approx(500, rel=2e-3)
    assert per["p99_ms=1100"].max_users == 50 and per["p99_ms=1100"].first_failing_users == 60
    assert per["error_pct=1"].max_users == 60 and not per["error_pct=1"].limit_reached
    d = plan.to_dict()["capacity"]
    assert d["per_slo"][0]["slo"] == "p95_ms=450" and d["knee"]["method"].startswith("marginal")


def test_per_slo_per_endpoint_and_no_request_steps_do_not_judge(tmp_path, recorded_run):
    fast, slow = latencies(5, 10, 20), latencies(5, 900, 900)
    steps = {
        5: {"api.a": fast, "hub.spawn_ready": fast},
        10: {"api.a": fast},  # no spawn in this step: its SLO is not judged here
        20: {"api.a": slow, "hub.spawn_ready": fast},
    }
    run = recorded_run(tmp_path / "r", steps, slos=["p95_ms=500", "hub.spawn_ready:p95_ms=30000"])
    per = {(c.slo, c.endpoint): c for c in plan_run(str(run)).per_slo}
    assert per[("p95_ms=500", "api.a")].max_users == 10
    spawn = per[("hub.spawn_ready:p95_ms=30000", "hub.spawn_ready")]
    # no request in a step is not enough data (issue 20), not a failure: it holds at 20
    assert spawn.max_users == 20 and spawn.first_failing_users is None


def _step(users: int, rps: float, p95: float = 10.0, verdict: str = "pass") -> StepVerdict:
    steady_s = 10.0
    return StepVerdict(0, users, verdict, users, steady_s, int(rps * steady_s), 0, 0.0, rps, p95)


@pytest.mark.parametrize(
    "points,users,next_users",
    [
        # proportional (1 rps per user) to 40, flat beyond: the knee is 40
        ([(10, 10), (20, 20), (30, 30), (40, 40), (50, 41), (60, 41)], 40, 50),
        # gain drops to 40 % of the initial slope between 30 and 40
        ([(10, 10), (20, 20), (30, 30), (40, 34)], 30, 40),
        # already flat after the first step
        ([(10, 10), (20, 11)], 10, 20),
    ],
)
def test_knee_is_the_last_step_before_throughput_stops_growing(points, users, next_users):
    knee = find_knee(tuple(_step(u, x) for u, x in points))
    assert knee.found and (knee.users, knee.next_users) == (users, next_users)
    assert "50%" in knee.method


def test_no_knee_while_throughput_keeps_growing_or_with_one_step():
    knee = find_knee(tuple(_step(u, u * 0.5) for u in (10, 20, 40)))
    assert not knee.found and knee.users is None and "above" in knee.note
    assert not find_knee((_step(10, 5),)).found
    # steps out of order and a step that was not run are handled
    steps = (_step(30, 30), _step(10, 10), _step(20, 20), _step(40, 0, verdict="not-run"))
    assert not find_knee(steps).found


@pytest.mark.parametrize(
    "capacity,expected,growth,months",
    [
        (40, 45, 10, 0.0),  # already exceeded
        (40, 40, 10, 0.0),  # at capacity: any growth exceeds it
        (40, 20, 0, math.inf),  # no growth: never
        (40, 20, -5, math.inf),
        (40, 20, 100, 1.0),  # doubling a month: 20 -> 40 in one month
        (40, 30, 10, math.log(40 / 30) / math.log(1.1)),
    ],
)
def test_months_until_capacity_runs_out(capacity, expected, growth, months):
    assert months_until(capacity, expected, growth) == pytest.approx(months)


def test_projection_of_a_run(tmp_path, recorded_run):
    fast, slow = latencies(5, 10, 20), latencies(5, 900, 900)
    run = recorded_run(
        tmp_path / "r", {20: {"a": fast}, 40: {"a": fast}, 50: {"a": slow}}, slos=["p95_ms=500"]
    )
    plan = plan_run(str(run))
    p = project(plan, 30, 5)
    assert p.available and not p.exhausted_now and not p.never
    assert p.months_until_exhausted == pytest.approx(math.log(40 / 30) / math.log(1.05), abs=0.05)
    assert p.months_until_band_upper == pytest.approx(math.log(50 / 30) / math.log(1.05), abs=0.05)
    assert "5.9 months" in p.text
    assert project(plan, 45, 0).exhausted_now and project(plan, 45).months_until_exhausted == 0
    flat = project(plan, 30)
    assert flat.never and flat.months_until_exhausted is None
    assert not project(plan, None).available and "--expected-users" in project(plan, None).text


def test_projection_when_the_limit_was_not_reached(tmp_path, recorded_run):
    fast = latencies(5, 10, 20)
    run = recorded_run(tmp_path / "r", {10: {"a": fast}, 20: {"a": fast}}, slos=["p95_ms=500"])
    plan = plan_run(str(run))
    p = project(plan, 10, 10)
    assert p.capacity_is_lower_bound and "at least that long" in p.text
    unknown = project(plan, 30, 10)
    assert not unknown.available and unknown.exhausted_now is None and "unknown" in unknown.text
