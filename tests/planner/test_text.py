"""``labcap plan``'s text: reasons grouped under the action they support."""

from __future__ import annotations

import pytest

from labcap.planner.recommend import plan_and_recommend
from labcap.planner.text import describe_plan
from tests.planner.test_capacity_projection import latencies

FAST = latencies(5, 10, 20)
SLOW = latencies(5, 900, 900)


@pytest.fixture
def run_40(tmp_path, recorded_run):
    steps = {10: {"api.a": FAST}, 20: {"api.a": FAST}, 40: {"api.a": FAST}, 50: {"api.a": SLOW}}
    return recorded_run(tmp_path / "r40", steps, slos=["p95_ms=500", "error_pct=1"])


def _section(text: str, head: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(head) + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("    - "):
            break
        out.append(line)
    return out


def test_reasons_sit_under_the_action_they_support(run_40, tmp_path):
    # a custom rule for another action: it shows under that action, marked outvoted
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "schema_version: 1\nrules:\n"
        "  - id: knee-says-migrate\n    when: {metric: knee_users, op: '>=', value: 0}\n"
        "    action: migrate-to-k3s\n    weight: 1\n    message: knee\n"
    )
    outcome = plan_and_recommend(run_40, policy_file=policy, expected_users=30)
    text = describe_plan(outcome)
    assert outcome.recommendation.action == "stay-on-compose"
    assert any("[capacity-meets-expected]" in x for x in _section(text, "  for stay-on-compose:"))
    other = _section(text, "  for migrate-to-k3s, outvoted (1):")
    assert other == ["    - [knee-says-migrate] knee"]
    guide = _section(
        text, "  the guide's user-count rules, not counted (measured capacity decides):"
    )
    assert any("[research-lab] stay-on-compose:" in x for x in guide)
    # the chosen action's reasons come first
    assert text.index("for stay-on-compose:") < text.index("for migrate-to-k3s")


def test_without_expected_users_it_says_why_not_see_reasons(run_40):
    text = describe_plan(plan_and_recommend(run_40))
    assert "(see reasons)" not in text
    assert "pass --expected-users N" in text.split("recommendation:")[1]
