import pytest

from labcap.model import ALL_ENDPOINTS
from labcap.planner.capacity import plan_run

FAST = [10.0] * 95 + [20.0] * 5
SLOW = [10.0] * 50 + [900.0] * 50


def test_capacity_is_last_passing_step_and_binding_slo_is_named(tmp_path, recorded_run):
    run = recorded_run(
        tmp_path / "r",
        {
            5: {"api.a": FAST, "api.b": FAST},
            10: {"api.a": FAST, "api.b": FAST},
            20: {"api.a": SLOW, "api.b": FAST},
        },
        slos=["p95_ms=500", "error_pct=1"],
    )
    plan = plan_run(str(run))
    assert [s.verdict for s in plan.steps] == ["pass", "pass", "fail"]
    assert plan.max_users_at_slo == 10 and plan.band == (10, 20) and plan.limit_reached
    assert [(c.endpoint, c.slo) for c in plan.binding] == [("api.a", "p95_ms=500")]
    assert plan.binding[0].measured == pytest.approx(900, rel=2e-3)
    assert "between 10 and 20 users" in plan.verdict and "api.a p95_ms" in plan.verdict
    d = plan.to_dict()
    assert d["capacity"]["max_users_at_slo"] == 10 and len(d["steps"]) == 3


def test_settling_requests_are_excluded_from_step_statistics(tmp_path, recorded_run):
    # 100 evenly spread requests per 10 s step, the first 2 s settling: 80 are steady.
    run = recorded_run(tmp_path / "r", {4: {"api.a": FAST}}, slos=["p95_ms=500"])
    plan = plan_run(str(run))
    overall = next(e for e in plan.endpoints if e.endpoint == ALL_ENDPOINTS)
    assert overall.requests == 80
    assert overall.rps == pytest.approx(80 / 8, rel=1e-6)


def test_per_endpoint_slo_overrides_the_default_for_that_endpoint(tmp_path, recorded_run):
    steps = {2: {"hub.spawn_ready": [3000.0] * 100, "api.a": FAST}}
    run = recorded_run(tmp_path / "r", steps, slos=["p95_ms=500", "hub.spawn_ready:p95_ms=5000"])
    assert plan_run(str(run)).steps[0].verdict == "pass"
    run2 = recorded_run(tmp_path / "r2", steps, slos=["p95_ms=500"])
    assert plan_run(str(run2)).steps[0].verdict == "fail"


def test_error_rate_slo(tmp_path, recorded_run):
    run = recorded_run(
        tmp_path / "r",
        {1: {"api.a": FAST}, 2: {"api.a": FAST}},
        slos=["error_pct=1"],
        failures={2: 10},
    )
    plan = plan_run(str(run))
    assert [s.verdict for s in plan.steps] == ["pass", "fail"]
    assert plan.binding[0].endpoint == ALL_ENDPOINTS
    # 110 requests spread over the step, 88 of them steady, the 10 failures last
    assert plan.steps[1].error_pct == pytest.approx(100 * 10 / 88, rel=1e-3)


def test_all_failed_gives_no_capacity_and_says_why(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "r", {1: {}, 2: {}}, slos=["p95_ms=500"], failures={1: 20, 2: 20})
    plan = plan_run(str(run))
    assert [s.verdict for s in plan.steps] == ["no-data", "no-data"]
    assert plan.max_users_at_slo is None
    assert "Every request failed" in plan.verdict and "ConnectionError: refused" in plan.verdict


def test_first_step_failing_gives_zero_and_advice(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "r", {8: {"api.a": SLOW}}, slos=["p95_ms=500"])
    plan = plan_run(str(run))
    assert plan.max_users_at_slo == 0 and plan.band == (0, 8)
    assert "smaller steps" in plan.verdict


def test_all_passing_is_a_lower_bound(tmp_path, recorded_run):
    run = recorded_run(
        tmp_path / "r", {1: {"api.a": FAST}, 3: {"api.a": FAST}}, slos=["p95_ms=500"]
    )
    plan = plan_run(str(run))
    assert plan.max_users_at_slo == 3 and plan.band == (3, None) and not plan.limit_reached
    assert "limit lies above" in plan.verdict


def test_interrupted_run_is_partial_and_unrun_steps_are_marked(tmp_path, recorded_run):
    run = recorded_run(
        tmp_path / "r",
        {1: {"api.a": FAST}, 2: {"api.a": FAST}, 4: {"api.a": FAST}},
        slos=["p95_ms=500"],
        status="partial",
        interrupt_at=15,
    )
    plan = plan_run(str(run))
    assert [s.verdict for s in plan.steps] == ["pass", "pass", "not-run"]
    assert plan.max_users_at_slo == 2 and "partial" in plan.verdict
