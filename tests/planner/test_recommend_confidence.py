"""Confidence reflects the sample sizes behind the capacity, the band width and the run's
validity (issue 20)."""

from __future__ import annotations

from labcap.planner.recommend import plan_and_recommend
from tests.planner.test_capacity_projection import latencies

SLOS = ["p95_ms=500", "error_pct=1"]


def _run(root, recorded_run, n: int, status: str = "complete"):
    # 40 users hold p95 <= 500 ms, 50 do not: a narrow band (25 %)
    fast, slow = latencies(5, 10, 20, n), latencies(5, 900, 900, n)
    steps = {10: {"api.a": fast}, 20: {"api.a": fast}, 40: {"api.a": fast}, 50: {"api.a": slow}}
    return recorded_run(root, steps, slos=SLOS, status=status)


def test_many_requests_in_a_narrow_band_is_high_confidence(tmp_path, recorded_run):
    rec = plan_and_recommend(_run(tmp_path / "r", recorded_run, 1000), expected_users=30)
    assert rec.recommendation.confidence.level == "high", rec.recommendation.confidence


def test_a_p95_on_few_requests_lowers_confidence_and_says_how_few(tmp_path, recorded_run):
    # 50 requests a step, 80 % steady: 40 behind the p95, 2 beyond it
    rec = plan_and_recommend(_run(tmp_path / "r", recorded_run, 50), expected_users=30)
    conf = rec.recommendation.confidence
    assert conf.level == "medium", conf
    thin = [w for w in conf.why if "beyond the percentile" in w]
    assert thin and "api.a p95_ms rests on" in thin[0] and "2 beyond" in thin[0], conf.why


def test_the_band_width_sets_the_level(tmp_path, recorded_run):
    fast, slow = latencies(5, 10, 20, 1000), latencies(5, 900, 900, 1000)
    run = recorded_run(
        tmp_path / "wide", {10: {"api.a": fast}, 40: {"api.a": slow}}, slos=SLOS
    )  # band (10, 40): 300 % wide
    conf = plan_and_recommend(run, expected_users=5).recommendation.confidence
    assert conf.level == "low" and any("300% wide" in w for w in conf.why), conf


def test_an_invalid_run_is_low_confidence_even_with_its_veto_turned_off(tmp_path, recorded_run):
    run = _run(tmp_path / "r", recorded_run, 1000, status="invalid")
    policy = tmp_path / "p.yaml"
    policy.write_text("schema_version: 1\nrules:\n  - id: run-not-complete\n    enabled: false\n")
    rec = plan_and_recommend(run, policy_file=policy, expected_users=30).recommendation
    assert rec.action == "stay-on-compose"
    assert rec.confidence.level == "low" and any("invalid" in w for w in rec.confidence.why)
