"""Measured capacity dominates the guide's user-count rules; ties are settled explicitly."""

from __future__ import annotations

import pytest

from labcap.planner.recommend import plan_and_recommend
from tests.planner.test_capacity_projection import latencies

FAST = latencies(5, 10, 20)
SLOW = latencies(5, 900, 900)


@pytest.fixture
def run_400(tmp_path, recorded_run):
    """Holds 400 users within p95 <= 500 ms, not 500."""
    steps = {100: {"api.a": FAST}, 200: {"api.a": FAST}, 400: {"api.a": FAST}, 500: {"api.a": SLOW}}
    return recorded_run(tmp_path / "r400", steps, slos=["p95_ms=500", "error_pct=1"])


@pytest.fixture
def run_40(tmp_path, recorded_run):
    steps = {10: {"api.a": FAST}, 20: {"api.a": FAST}, 40: {"api.a": FAST}, 50: {"api.a": SLOW}}
    return recorded_run(tmp_path / "r40", steps, slos=["p95_ms=500", "error_pct=1"])


def test_measured_400_against_150_expected_stays_on_compose(run_400):
    rec = plan_and_recommend(run_400, expected_users=150).recommendation
    assert rec.action == "stay-on-compose", rec.summary
    assert rec.decided_by == "measurement"
    assert {"enterprise", "guide-users-k3s"} <= set(rec.guide_outvoted)
    assert "scale-out-k3s" not in rec.scores  # the guide's votes do not count
    assert any("measured capacity decides" in w for w in rec.confidence.why)
    d = rec.to_dict()
    assert d["decided_by"] == "measurement" and "enterprise" in d["guide_outvoted"]


def test_the_guide_decides_only_where_the_measurement_cannot(run_40, tmp_path):
    # with every measured rule turned off, the guide's user-count rules vote
    off = "\n".join(
        f"  - id: {r}\n    enabled: false"
        for r in (
            "capacity-meets-expected",
            "capacity-close-tunable",
            "capacity-short-not-tunable",
            "capacity-below-expected",
            "multi-node-needed",
            "capacity-runs-out-soon",
        )
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(f"schema_version: 1\nrules:\n{off}\n")
    rec = plan_and_recommend(run_40, policy_file=policy, expected_users=120).recommendation
    assert rec.decided_by == "guide" and rec.action == "scale-out-k3s"
    assert rec.guide_outvoted == ()


def _policy(tmp_path, rules: str):
    p = tmp_path / "tie.yaml"
    p.write_text("schema_version: 1\nrules:\n" + rules)
    return p


def test_a_tie_goes_to_the_heaviest_single_rule_and_says_so(run_40, tmp_path):
    # stay 2 + 1 against migrate 3: equal totals, migrate has the heaviest rule
    policy = _policy(
        tmp_path,
        "  - id: capacity-meets-expected\n    weight: 2\n"
        "  - id: stay-extra\n    when: {metric: capacity_ratio, op: '>=', value: 1}\n"
        "    action: stay-on-compose\n    weight: 1\n    message: extra\n"
        "  - id: migrate-heavy\n    when: {metric: capacity_ratio, op: '>=', value: 1}\n"
        "    action: migrate-to-k3s\n    weight: 3\n    message: heavy\n",
    )
    rec = plan_and_recommend(run_40, policy_file=policy, expected_users=30).recommendation
    assert rec.action == "migrate-to-k3s"
    tie = rec.reasons[0]
    assert tie.rule == "tie-break" and tie.action == "migrate-to-k3s"
    assert "heaviest single rule" in tie.message and "stay-on-compose" in tie.message
    assert rec.confidence.level == "low"


def test_a_full_tie_goes_to_the_simpler_deployment_and_says_so(run_40, tmp_path):
    policy = _policy(
        tmp_path,
        "  - id: migrate-same\n    when: {metric: capacity_ratio, op: '>=', value: 1}\n"
        "    action: migrate-to-k3s\n    weight: 3\n    message: same\n",
    )
    rec = plan_and_recommend(run_40, policy_file=policy, expected_users=30).recommendation
    assert rec.action == "stay-on-compose"
    assert rec.reasons[0].rule == "tie-break"
    assert "simpler deployment" in rec.reasons[0].message


def test_no_tie_no_tie_break_reason(run_40):
    rec = plan_and_recommend(run_40, expected_users=30).recommendation
    assert "tie-break" not in {r.rule for r in rec.reasons}
