"""Thin data: too few requests to judge a percentile is "not enough data", never a breach."""

from __future__ import annotations

from pathlib import Path

from labcap.planner.capacity import MIN_SAMPLES, check_step, plan_run
from labcap.planner.recommend import plan_and_recommend
from labcap.slo import parse_slos
from tests.conftest import record_run

DEMO_SLOS = ["p95_ms=500", "hub.stop:p95_ms=2000", "error_pct=1"]


def _many(base_ms: float, n: int = 60) -> list[float]:
    return [base_ms + (i % 7) for i in range(n)]


def _demo_run(root: Path) -> Path:
    # steps 2 and 4 of 10 s, as `labcap demo` runs them: hub.stop is rare, and its one
    # request in the second step falls in the settling period (the first of 60 events)
    return record_run(
        root / "demo",
        {
            2: {"hub.login": _many(20), "mlflow.search": _many(30), "hub.stop": _many(40, 30)},
            4: {"hub.stop": [900.0], "hub.login": _many(22), "mlflow.search": _many(31)},
        },
        slos=DEMO_SLOS,
        step_s=10,
    )


def test_min_samples_rule_is_one_beyond_the_percentile():
    assert MIN_SAMPLES == {"p50_ms": 2, "p90_ms": 10, "p95_ms": 20, "p99_ms": 100, "max_ms": 1}


def test_a_step_short_of_data_on_one_endpoint_is_inconclusive_and_names_it(tmp_path):
    plan = plan_run(str(_demo_run(tmp_path)))
    assert [s.verdict for s in plan.steps] == ["pass", "inconclusive"]
    assert not plan.limit_reached
    assert plan.max_users_at_slo == 2
    assert plan.binding == ()
    short = {(d.endpoint, d.step_users) for d in plan.needs_more_data}
    assert ("hub.stop", (4,)) in short
    assert "Not enough data: hub.stop" in plan.verdict
    assert "rerun with longer steps" in plan.verdict
    check = next(c for c in plan.steps[1].checks if c.endpoint == "hub.stop")
    assert check.status == "not-enough-data" and check.samples == 0 and check.min_samples == 20
    d = plan.to_dict()["capacity"]
    assert "1/(1-q)" in d["min_samples_rule"]
    assert d["needs_more_data"][0]["endpoint"] == "hub.stop"


def test_thin_demo_run_is_not_a_scale_out(tmp_path):
    outcome = plan_and_recommend(_demo_run(tmp_path), expected_users=25)
    rec = outcome.recommendation
    assert rec.action == "insufficient-data"
    assert "steps-inconclusive" in {r.rule for r in rec.reasons}
    assert rec.binding_constraint is None
    # 2 users is a lower bound, not a capacity: no node count is derived from it
    assert outcome.recommendation.measurements["nodes_needed"] is None
    assert "multi-node-needed" not in {r.rule for r in rec.reasons}
    assert "scale-out-k3s" not in rec.scores


def test_one_request_is_never_a_p95(tmp_path):
    from labcap.planner.capacity import EndpointStats

    one = EndpointStats(0, 2, "hub.stop", 1, 0, 0.0, 0.1, 900.0, *[900.0] * 5)
    everyone = EndpointStats(0, 2, "*", 1, 0, 0.0, 0.1, 900.0, *[900.0] * 5)
    checks = check_step([one, everyone], parse_slos(["p95_ms=500", "max_ms=500"]))
    by_metric = {c.slo: c for c in checks}
    assert by_metric["p95_ms=500"].status == "not-enough-data"
    assert not by_metric["p95_ms=500"].failed
    # max needs one request: a single request over the bound is a breach
    assert by_metric["max_ms=500"].failed


def test_a_breach_on_enough_requests_still_binds_with_a_figure(tmp_path):
    run = record_run(
        tmp_path / "r",
        {2: {"hub.login": _many(20)}, 4: {"hub.login": _many(800)}},
        slos=["p95_ms=500"],
        step_s=10,
    )
    outcome = plan_and_recommend(run, expected_users=25)
    assert [s.verdict for s in outcome.capacity.steps] == ["pass", "fail"]
    b = outcome.recommendation.binding_constraint
    assert b is not None and b.measured is not None and b.at_users == 4
