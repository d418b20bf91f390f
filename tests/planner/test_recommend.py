"""Recommendations on synthetic runs with known capacity, and `labcap plan` around them."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from labcap.errors import LabcapError
from labcap.planner.recommend import (
    Recommendation,
    parse_expected_users,
    parse_growth,
    plan_and_recommend,
)
from tests.planner.test_capacity_projection import latencies
from tests.support.cli import invoke

FAST = latencies(5, 10, 20)
SLOW = latencies(5, 900, 900)


@pytest.fixture
def run_40(tmp_path, recorded_run):
    """Holds 40 users within p95 <= 500 ms, not 50: capacity 40, band (40, 50)."""
    steps = {10: {"api.a": FAST}, 20: {"api.a": FAST}, 40: {"api.a": FAST}, 50: {"api.a": SLOW}}
    return recorded_run(tmp_path / "r40", steps, slos=["p95_ms=500", "error_pct=1"])


@pytest.fixture
def run_40_spawn_bound(tmp_path, recorded_run):
    """Capacity 40 as well, but what fails at 50 users is the spawn-to-ready time."""
    slow_spawn = latencies(5000, 45000, 50000)
    steps = {
        20: {"api.a": FAST, "hub.spawn_ready": latencies(5000, 9000, 10000)},
        40: {"api.a": FAST, "hub.spawn_ready": latencies(5000, 9000, 10000)},
        50: {"api.a": FAST, "hub.spawn_ready": slow_spawn},
    }
    slos = ["p95_ms=500", "hub.spawn_ready:p95_ms=30000", "error_pct=1"]
    return recorded_run(tmp_path / "spawn", steps, slos=slos)


def rules_of(rec: Recommendation, action: str | None = None) -> set[str]:
    return {r.rule for r in rec.reasons if action is None or r.action == action}


@pytest.mark.parametrize(
    "expected,growth,action,must_fire",
    [
        (30, 0, "stay-on-compose", {"capacity-meets-expected", "research-lab"}),
        (8, 0, "stay-on-compose", {"personal-small-team", "guide-users-compose"}),
        (45, 0, "migrate-to-k3s", {"capacity-short-not-tunable"}),
        (60, 0, "migrate-to-k3s", {"capacity-below-expected", "department", "guide-users-k3s"}),
        (120, 0, "scale-out-k3s", {"multi-node-needed", "enterprise"}),
        (35, 10, "migrate-to-k3s", {"capacity-runs-out-soon"}),
    ],
)
def test_action_follows_capacity_and_expected_users(run_40, expected, growth, action, must_fire):
    rec = plan_and_recommend(
        run_40, expected_users=expected, growth_pct_per_month=growth
    ).recommendation
    assert rec.action == action, rec.summary
    assert must_fire <= rules_of(rec, action)
    b = rec.binding_constraint
    assert (b.slo, b.endpoint, b.kind, b.at_users) == ("p95_ms=500", "api.a", "latency", 50)


def test_reasons_carry_measured_value_threshold_and_message(run_40):
    rec = plan_and_recommend(run_40, expected_users=60).recommendation
    reason = next(r for r in rec.reasons if r.rule == "capacity-below-expected")
    assert reason.measured == {"capacity_ratio": pytest.approx(40 / 60, abs=1e-3)}
    assert reason.threshold == "capacity_ratio < 0.8"
    assert "40 users at SLO" in reason.message and "60 expected" in reason.message
    assert rec.reasons[0].action == rec.action  # the reasons behind the action come first


def test_startup_bound_capacity_close_to_demand_is_tuned_not_migrated(run_40_spawn_bound):
    rec = plan_and_recommend(run_40_spawn_bound, expected_users=45).recommendation
    assert rec.binding_constraint.kind == "startup"
    assert rec.binding_constraint.endpoint == "hub.spawn_ready"
    assert rec.action == "tune-compose" and "capacity-close-tunable" in rules_of(rec)


def test_the_same_capacity_bound_by_latency_is_migrated(run_40):
    rec = plan_and_recommend(run_40, expected_users=45).recommendation
    assert rec.action == "migrate-to-k3s" and "capacity-close-tunable" not in rules_of(rec)


# --- insufficient data -----------------------------------------------------------------------


def test_partial_run_is_insufficient_data(tmp_path, recorded_run):
    run = recorded_run(
        tmp_path / "r",
        {10: {"a": FAST}, 20: {"a": FAST}, 40: {"a": FAST}},
        slos=["p95_ms=500"],
        status="partial",
        interrupt_at=15,
    )
    rec = plan_and_recommend(run, expected_users=10).recommendation
    assert rec.action == "insufficient-data" and rec.confidence.level == "low"
    assert {"run-not-complete", "steps-not-run"} <= rules_of(rec, "insufficient-data")
    # the other rules still report what they saw
    assert "capacity-meets-expected" in rules_of(rec)


def test_all_failed_is_insufficient_data(tmp_path, recorded_run):
    run = recorded_run(
        tmp_path / "r", {5: {}, 10: {}}, slos=["p95_ms=500"], failures={5: 20, 10: 20}
    )
    rec = plan_and_recommend(run, expected_users=10).recommendation
    assert rec.action == "insufficient-data"
    assert "no-successful-requests" in rules_of(rec)


def test_many_failures_in_passing_steps_is_insufficient_data(tmp_path, recorded_run):
    # failures at 20 users, on an endpoint without an SLO of its own and no error_pct SLO
    steps = {10: {"a": FAST[:100]}, 20: {"a": FAST[:100]}, 40: {"a": SLOW[:100]}}
    run = recorded_run(tmp_path / "r", steps, slos=["a:p95_ms=500"], failures={20: 20})
    outcome = plan_and_recommend(run, expected_users=15)
    assert [s.verdict for s in outcome.capacity.steps] == ["pass", "pass", "fail"]
    rec = outcome.recommendation
    assert rec.action == "insufficient-data"
    assert rules_of(rec, "insufficient-data") == {"too-many-failed-requests"}
    reason = next(r for r in rec.reasons if r.rule == "too-many-failed-requests")
    assert reason.measured["error_pct_passing"] > 5


def test_limit_not_reached_below_demand_is_insufficient_data(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "r", {5: {"a": FAST}, 10: {"a": FAST}}, slos=["p95_ms=500"])
    rec = plan_and_recommend(run, expected_users=40).recommendation
    assert rec.action == "insufficient-data"
    assert rules_of(rec, "insufficient-data") == {"limit-not-reached-below-demand"}
    # above the demand the same run is an answer, held back to medium confidence
    ok = plan_and_recommend(run, expected_users=8).recommendation
    assert ok.action == "stay-on-compose" and ok.confidence.level == "medium"
    assert "lower bound" in ok.confidence.why[0]


def test_without_expected_users_there_is_no_decision(run_40):
    rec = plan_and_recommend(run_40).recommendation
    assert rec.action == "insufficient-data" and rec.reasons == ()
    assert "--expected-users" in rec.summary
    assert any(n.rule == "capacity-meets-expected" for n in rec.not_evaluated)


# --- confidence --------------------------------------------------------------------------------


def test_confidence_high_on_a_narrow_band_and_clear_vote(run_40):
    rec = plan_and_recommend(run_40, expected_users=20).recommendation
    assert rec.action == "stay-on-compose" and rec.confidence.level == "high"
    assert any("not evaluated" in w and "gpu_users_per_gpu" in w for w in rec.confidence.why)


def test_confidence_low_on_a_wide_band(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "r", {10: {"a": FAST}, 40: {"a": SLOW}}, slos=["p95_ms=500"])
    rec = plan_and_recommend(run, expected_users=5).recommendation
    assert rec.action == "stay-on-compose" and rec.confidence.level == "low"
    assert "300% wide" in rec.confidence.why[0]


def test_confidence_medium_when_demand_falls_inside_the_band(run_40):
    rec = plan_and_recommend(run_40, expected_users=45).recommendation
    assert rec.confidence.level == "medium"
    assert any("inside the capacity band" in w for w in rec.confidence.why)


# --- inputs from collectors ----------------------------------------------------------------------


def test_container_memory_pressure_fires_the_contention_rule(run_40):
    rows = [
        {
            "t_unix": 1.0,
            "container_id": "c1",
            "step_index": i,
            "mem_bytes": mem,
            "oom_kills": 0,
            "mem_limit_bytes": 1000,
        }
        for i, mem in enumerate((300, 500, 930, 990))
    ]
    pd.DataFrame(rows).to_parquet(run_40 / "container_samples.parquet")
    rec = plan_and_recommend(run_40, expected_users=30).recommendation
    assert rec.measurements["mem_used_pct"] == 99.0 and rec.measurements["oom_kills"] == 0
    assert "memory-contention" in rules_of(rec, "migrate-to-k3s")
    assert "memory-contention" not in {n.rule for n in rec.not_evaluated}


def test_extra_measurements_from_other_collectors(run_40):
    rec = plan_and_recommend(
        run_40, expected_users=30, extra_measurements={"gpu_users_per_gpu": 3.0}
    ).recommendation
    assert "gpu-sharing-needed" in rules_of(rec)
    with pytest.raises(LabcapError, match="unknown measurement 'gpus'"):
        plan_and_recommend(run_40, extra_measurements={"gpus": 1})


def test_custom_policy_changes_the_answer(run_40, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "schema_version: 1\n"
        "rules:\n"
        "  - id: capacity-meets-expected\n"
        "    when: {metric: capacity_ratio, op: '>=', value: 1.5}\n"
    )
    default = plan_and_recommend(run_40, expected_users=35).recommendation
    custom = plan_and_recommend(run_40, policy_file=policy, expected_users=35).recommendation
    assert "capacity-meets-expected" in rules_of(default)
    assert "capacity-meets-expected" not in rules_of(custom)
    assert custom.policy_sources[-1] == str(policy)


def test_recommendation_is_a_frozen_record_with_valid_json(run_40):
    outcome = plan_and_recommend(run_40, expected_users=20)
    rec = outcome.recommendation
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.action = "tune-compose"  # type: ignore[misc]
    text = json.dumps(outcome.to_dict(), allow_nan=False)  # "never" is null, not Infinity
    d = json.loads(text)
    assert set(d["recommendation"]) >= {"action", "reasons", "binding_constraint", "confidence"}
    assert d["projection"]["never"] is True and d["projection"]["months_until_exhausted"] is None


# --- the CLI ---------------------------------------------------------------------------------


def test_plan_json_has_capacity_recommendation_and_projection(run_40):
    r = invoke("plan", str(run_40), "--json", "--expected-users", "45", "--growth-per-month", "5%")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["capacity"]["max_users_at_slo"] == 40 and d["capacity"]["per_slo"]
    rec = d["recommendation"]
    assert rec["action"] == "migrate-to-k3s" and rec["confidence"]["level"] == "medium"
    assert rec["binding_constraint"]["slo"] == "p95_ms=500"
    assert {"rule", "measured", "threshold", "message"} <= set(rec["reasons"][0])
    assert d["projection"]["exhausted_now"] is True and d["projection"]["growth_pct_per_month"] == 5


def test_plan_human_output_prints_action_and_reasons(run_40):
    r = invoke("plan", str(run_40), "--expected-users", "30")
    assert r.exit_code == 0, r.output
    assert "recommendation: stay-on-compose (high confidence)" in r.output
    assert "[capacity-meets-expected]" in r.output and "[research-lab]" in r.output
    assert "projection: 30 expected users fit the capacity (40)" in r.output


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--expected-users", "lots"], "--expected-users 'lots' is not a positive whole number"),
        (["--expected-users", "0"], "not a positive whole number"),
        (["--growth-per-month", "fast"], "--growth-per-month 'fast' is not a percentage"),
        (["--growth-per-month", "-100"], "above -100"),
        (["--policy", "/nonexistent/policy.yaml"], "no such file"),
    ],
)
def test_plan_bad_options_exit_2_with_one_line(run_40, args, fragment):
    r = invoke("plan", str(run_40), *args)
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labcap: error:") and fragment in lines[0]


def test_option_parsers():
    assert parse_expected_users(" 12 ") == 12 and parse_expected_users(None) is None
    assert parse_growth("7.5%") == 7.5 and parse_growth(None) == 0 and parse_growth("-3") == -3
