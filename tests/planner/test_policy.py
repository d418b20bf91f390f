"""The decision policy: default rules, conditions, overrides, and every way a file can be wrong."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from labcap.errors import LabcapError
from labcap.planner.policy import (
    ACTIONS,
    METRICS,
    default_policy,
    evaluate,
    evaluate_rules,
    load_policy,
    parse_condition,
    policy_from_data,
)
from tests.support.cli import invoke

# A measured run with nothing remarkable: complete, limit found at 40 users in (40, 50).
BASE = {
    "run_status": "complete",
    "steps_planned": 5,
    "steps_not_run": 0,
    "steps_no_data": 0,
    "steps_with_data": 5,
    "steps_inconclusive": 0,
    "error_pct_passing": 0.0,
    "error_pct_first_step": 0.0,
    "max_users_at_slo": 40,
    "capacity_upper_users": 50,
    "band_width_pct": 25.0,
    "limit_reached": True,
    "knee_users": 40,
    "binding_kind": "latency",
    "bottleneck": "unknown",
    "bottleneck_scales_out": "unknown",
}

# rule id -> (cases where it fires, neighbouring cases where it does not)
RULE_CASES: dict[str, tuple[list[dict], list[dict]]] = {
    "run-not-complete": ([{"run_status": "partial"}, {"run_status": "failed"}], [{}]),
    "steps-not-run": ([{"steps_not_run": 1}], [{"steps_not_run": 0}]),
    "no-successful-requests": ([{"steps_with_data": 0}], [{"steps_with_data": 1}]),
    "steps-inconclusive": ([{"steps_inconclusive": 1}], [{"steps_inconclusive": 0}]),
    "too-many-failed-requests": ([{"error_pct_passing": 5.1}], [{"error_pct_passing": 5.0}]),
    "first-step-failing-requests": (
        [{"error_pct_first_step": 5.1}],
        [{"error_pct_first_step": 5.0}],
    ),
    "limit-not-reached-below-demand": (
        [{"limit_reached": False, "capacity_ratio": 0.99}],
        [
            {"limit_reached": True, "capacity_ratio": 0.99},
            {"limit_reached": False, "capacity_ratio": 1.0},
        ],
    ),
    "capacity-meets-expected": ([{"capacity_ratio": 1.0}], [{"capacity_ratio": 0.99}]),
    "capacity-close-tunable": (
        [
            {"capacity_ratio": 0.8, "binding_kind": "startup"},
            {"capacity_ratio": 1.19, "binding_kind": "startup"},
        ],
        [
            {"capacity_ratio": 0.8, "binding_kind": "latency"},
            {"capacity_ratio": 0.79, "binding_kind": "startup"},
            {"capacity_ratio": 1.2, "binding_kind": "startup"},
        ],
    ),
    "capacity-short-not-tunable": (
        [{"capacity_ratio": 0.9}, {"capacity_ratio": 0.8, "binding_kind": "error_rate"}],
        [
            {"capacity_ratio": 0.9, "binding_kind": "startup"},
            {"capacity_ratio": 1.0},
            {"capacity_ratio": 0.79},
        ],
    ),
    "capacity-below-expected": ([{"capacity_ratio": 0.79}], [{"capacity_ratio": 0.8}]),
    "multi-node-needed": (
        [
            {"capacity_ratio": 0.49, "nodes_needed": 3},
            {"capacity_ratio": 0.49, "nodes_needed": 3, "bottleneck_scales_out": "yes"},
        ],
        [
            {"capacity_ratio": 0.5, "nodes_needed": 2},
            {"capacity_ratio": 0.49, "nodes_needed": 1},
            {"capacity_ratio": 0.49, "nodes_needed": 3, "bottleneck_scales_out": "no"},
        ],
    ),
    "bottleneck-does-not-scale-out": (
        [{"capacity_ratio": 0.99, "bottleneck": "hub", "bottleneck_scales_out": "no"}],
        [
            {"capacity_ratio": 1.0, "bottleneck": "hub", "bottleneck_scales_out": "no"},
            {"capacity_ratio": 0.5, "bottleneck": "mlflow", "bottleneck_scales_out": "yes"},
            {"capacity_ratio": 0.5, "bottleneck": "hub", "bottleneck_scales_out": "unknown"},
        ],
    ),
    "scheduling-conflicts": (
        [{"pods_failed_scheduling": 1}],
        [{"pods_failed_scheduling": 0}],
    ),
    "host-cpu-saturated": ([{"host_cpu_pct": 90}], [{"host_cpu_pct": 89.9}]),
    "containers-restarting": ([{"container_restarts": 1}], [{"container_restarts": 0}]),
    "capacity-runs-out-soon": (
        [{"capacity_ratio": 1.1, "months_until_exhausted": 2.9}],
        [
            {"capacity_ratio": 1.1, "months_until_exhausted": 3.0},
            {"capacity_ratio": 1.1, "months_until_exhausted": math.inf},
            {"capacity_ratio": 0.9, "months_until_exhausted": 0.0},
        ],
    ),
    "guide-users-compose": (
        [{"expected_users": 50}, {"expected_users": 1}],
        [{"expected_users": 51}],
    ),
    "guide-users-k3s": ([{"expected_users": 51}], [{"expected_users": 50}]),
    "personal-small-team": ([{"expected_users": 9}], [{"expected_users": 10}]),
    "research-lab": (
        [{"expected_users": 10}, {"expected_users": 30}],
        [{"expected_users": 9}, {"expected_users": 31}],
    ),
    "department": (
        [{"expected_users": 50}, {"expected_users": 100}],
        [{"expected_users": 49}, {"expected_users": 101}],
    ),
    "enterprise": ([{"expected_users": 101}], [{"expected_users": 100}]),
    "gpu-scheduling-conflicts": (
        [{"gpu_queue_wait_p95_ms": 5001}],
        [{"gpu_queue_wait_p95_ms": 5000}],
    ),
    "gpu-sharing-needed": ([{"gpu_users_per_gpu": 1.5}], [{"gpu_users_per_gpu": 1.0}]),
    "gpu-idle-while-queued": (
        [{"gpu_idle_while_queued_s": 30.5}],
        [{"gpu_idle_while_queued_s": 30}],
    ),
    "gpu-light-users-share": (
        [{"gpu_users_per_gpu": 2, "gpu_util_pct": 49.9}],
        [
            {"gpu_users_per_gpu": 1, "gpu_util_pct": 10},
            {"gpu_users_per_gpu": 3, "gpu_util_pct": 50},
        ],
    ),
    "memory-contention": (
        [{"mem_used_pct": 90, "oom_kills": 0}, {"mem_used_pct": 50, "oom_kills": 1}],
        [{"mem_used_pct": 89.9, "oom_kills": 0}],
    ),
    "cpu-contention": ([{"cpu_throttled_pct": 20.1}], [{"cpu_throttled_pct": 20}]),
    "storage-io-limit": ([{"iowait_pct": 20}], [{"iowait_pct": 19.9}]),
}


def _state(rule_id: str, overrides: dict, policy=None) -> str:
    policy = policy or default_policy()
    values = {**dict.fromkeys(METRICS), **BASE, **overrides}
    (outcome,) = [o for o in evaluate_rules(policy, values) if o.rule.id == rule_id]
    return outcome.state


def test_every_default_rule_has_a_case():
    assert {r.id for r in default_policy().rules} == set(RULE_CASES)


@pytest.mark.parametrize(
    "rule_id,overrides,expected",
    [
        (rid, case, state)
        for rid, (fire, quiet) in RULE_CASES.items()
        for cases, state in ((fire, "fired"), (quiet, "not-fired"))
        for case in cases
    ],
)
def test_default_rule_fires_on_its_case_and_not_on_its_neighbour(rule_id, overrides, expected):
    assert _state(rule_id, overrides) == expected


def test_default_policy_votes_the_guide_matrix():
    policy = default_policy()
    votes = {r.id: r.action for r in policy.rules}
    assert votes["guide-users-compose"] == votes["research-lab"] == "stay-on-compose"
    assert votes["personal-small-team"] == "stay-on-compose"
    assert votes["guide-users-k3s"] == votes["department"] == "migrate-to-k3s"
    assert votes["enterprise"] == votes["multi-node-needed"] == "scale-out-k3s"
    assert votes["capacity-close-tunable"] == "tune-compose"
    assert policy.schema_version == 1 and policy.is_startup("hub.spawn_ready")
    assert not policy.is_startup("mlflow.search")


def test_a_rule_whose_input_is_missing_is_not_evaluated_and_names_it():
    values = {**dict.fromkeys(METRICS), **BASE}
    outcomes = {o.rule.id: o for o in evaluate_rules(default_policy(), values)}
    gpu = outcomes["gpu-sharing-needed"]
    assert gpu.state == "not-evaluated" and gpu.missing == ("gpu_users_per_gpu",)
    mem = outcomes["memory-contention"]
    assert mem.state == "not-evaluated" and mem.missing == ("mem_used_pct", "oom_kills")
    assert outcomes["capacity-meets-expected"].missing == ("capacity_ratio",)


@pytest.mark.parametrize(
    "cond,values,result",
    [
        (
            {
                "any": [
                    {"metric": "oom_kills", "op": ">", "value": 0},
                    {"metric": "mem_used_pct", "op": ">", "value": 1},
                ]
            },
            {"oom_kills": 1},
            True,
        ),
        (
            {
                "any": [
                    {"metric": "oom_kills", "op": ">", "value": 0},
                    {"metric": "mem_used_pct", "op": ">", "value": 1},
                ]
            },
            {"oom_kills": 0},
            None,
        ),
        (
            {
                "all": [
                    {"metric": "oom_kills", "op": ">", "value": 0},
                    {"metric": "mem_used_pct", "op": ">", "value": 1},
                ]
            },
            {"oom_kills": 0},
            False,
        ),
        (
            {
                "all": [
                    {"metric": "oom_kills", "op": ">", "value": 0},
                    {"metric": "mem_used_pct", "op": ">", "value": 1},
                ]
            },
            {"oom_kills": 1},
            None,
        ),
        ({"not": {"metric": "oom_kills", "op": ">", "value": 0}}, {}, None),
        ({"not": {"metric": "oom_kills", "op": ">", "value": 0}}, {"oom_kills": 0}, True),
        (
            {"metric": "binding_kind", "op": "not in", "value": ["startup", "none"]},
            {"binding_kind": "latency"},
            True,
        ),
        ({"metric": "limit_reached", "op": "!=", "value": True}, {"limit_reached": False}, True),
    ],
)
def test_conditions_use_three_valued_logic(cond, values, result):
    assert evaluate(parse_condition(cond), values).result is result


# --- overrides -------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def test_override_changes_a_threshold_and_keeps_the_rest(tmp_path):
    p = _write(
        tmp_path,
        "schema_version: 1\n"
        "rules:\n"
        "  - id: capacity-below-expected\n"
        "    when: {metric: capacity_ratio, op: '<', value: 0.9}\n",
    )
    policy = load_policy(p)
    rule = policy.rule("capacity-below-expected")
    assert rule.message == default_policy().rule("capacity-below-expected").message
    assert rule.action == "migrate-to-k3s" and rule.weight == 3
    assert _state("capacity-below-expected", {"capacity_ratio": 0.85}, policy) == "fired"
    assert policy.sources == ("labcap default policy", str(p))
    assert len(policy.rules) == len(default_policy().rules)


def test_override_disables_a_rule_and_adds_one(tmp_path):
    p = _write(
        tmp_path,
        """
schema_version: 1
startup_endpoints: ["my.spawn*"]
confidence: {wide_band_pct: 50}
rules:
  - id: enterprise
    enabled: false
  - id: small-lab-gpu-share
    when:
      all:
        - {metric: expected_users, op: "<=", value: 20}
        - {metric: gpu_users_per_gpu, op: ">=", value: 4}
    action: scale-out-k3s
    weight: 2
    message: "{gpu_users_per_gpu} users per GPU for {expected_users} users"
""",
    )
    policy = load_policy(p)
    ids = [o.rule.id for o in evaluate_rules(policy, BASE)]
    assert "enterprise" not in ids and ids[-1] == "small-lab-gpu-share"
    assert (
        _state("small-lab-gpu-share", {"expected_users": 12, "gpu_users_per_gpu": 4}, policy)
        == "fired"
    )
    assert policy.is_startup("my.spawn_ready") and not policy.is_startup("hub.spawn")
    assert policy.confidence.wide_band_pct == 50 and policy.confidence.narrow_band_pct == 25
    rendered = policy.rule("small-lab-gpu-share").render(
        {"gpu_users_per_gpu": 4, "expected_users": 12}
    )
    assert rendered == "4 users per GPU for 12 users"


def test_message_templates_format_values_and_say_na_for_missing():
    rule = default_policy().rule("too-many-failed-requests")
    assert rule.render({"error_pct_passing": 7.456}).startswith("7.5% of requests failed")
    assert (
        default_policy()
        .rule("memory-contention")
        .render({"mem_used_pct": 93.2})
        .endswith("93% of their limit, n/a OOM kills.")
    )


# --- invalid files ---------------------------------------------------------------------------


def _rules(*lines: str) -> str:
    """A policy file whose ``rules`` list holds the given (indented) lines."""
    return "schema_version: 1\nrules:\n" + "".join(f"  {line}\n" for line in lines)


INVALID = [
    (
        "unknown rule key",
        _rules(
            "- id: capacity-below-expected", "  wen: {metric: capacity_ratio, op: '<', value: 1}"
        ),
        ["rule 'capacity-below-expected'", "unknown key 'wen'", "valid keys"],
    ),
    (
        "unknown metric",
        _rules(
            "- id: my-rule",
            "  when: {metric: capacity_rate, op: '<', value: 1}",
            "  action: migrate-to-k3s",
            "  message: hi",
        ),
        ["rule 'my-rule'", "when.metric", "unknown metric 'capacity_rate'", "capacity_ratio"],
    ),
    (
        "bad op",
        _rules("- id: enterprise", "  when: {metric: expected_users, op: '=>', value: 100}"),
        ["rule 'enterprise'", "when.op", "unknown op '=>'"],
    ),
    (
        "wrong value type",
        _rules("- id: enterprise", "  when: {metric: expected_users, op: '>', value: lots}"),
        ["rule 'enterprise'", "when.value", "'lots' is not a finite number"],
    ),
    (
        "newer schema",
        "schema_version: 2\nrules: []\n",
        ["schema_version", "2 is newer than this labcap reads (1)"],
    ),
    ("missing schema", "rules: []\n", ["missing key 'schema_version'"]),
    ("unknown top-level key", "schema_version: 1\nrulez: []\n", ["unknown key 'rulez'"]),
    (
        "unknown action",
        _rules("- id: department", "  action: migrate"),
        ["rule 'department'", "action", "unknown action 'migrate'", "migrate-to-k3s"],
    ),
    (
        "weight of the wrong type",
        _rules("- id: department", "  weight: heavy"),
        ["rule 'department'", "weight", "'heavy'"],
    ),
    (
        "enabled not a bool",
        _rules("- id: department", "  enabled: 'no'"),
        ["rule 'department'", "enabled", "true or false"],
    ),
    (
        "new rule without message",
        _rules(
            "- id: brand-new",
            "  when: {metric: oom_kills, op: '>', value: 0}",
            "  action: migrate-to-k3s",
        ),
        ["rule 'brand-new'", "missing key 'message'"],
    ),
    (
        "unknown placeholder",
        _rules("- id: department", "  message: 'users: {expected}'"),
        ["rule 'department'", "message", "unknown metric 'expected'"],
    ),
    (
        "nested bad key",
        _rules(
            "- id: research-lab",
            "  when: {all: [{metric: expected_users, op: '>', value: 1}, {metrc: x}]}",
        ),
        ["rule 'research-lab'", "when.all[1]", "unknown key 'metrc'"],
    ),
    (
        "ordering op on a word",
        _rules("- id: research-lab", "  when: {metric: binding_kind, op: '<', value: startup}"),
        ["rule 'research-lab'", "op '<' compares numbers", "binding_kind"],
    ),
    (
        "enum value misspelt",
        _rules("- id: research-lab", "  when: {metric: binding_kind, op: '==', value: startp}"),
        ["rule 'research-lab'", "'startp'", "latency, error_rate, startup, none"],
    ),
    (
        "duplicate id",
        _rules("- {id: department, weight: 2}", "- {id: department, weight: 3}"),
        ["rule 'department'", "twice"],
    ),
    (
        "bad rule id",
        _rules("- {id: 'Has Spaces', weight: 2}"),
        ["rules[0].id", "'Has Spaces'"],
    ),
    (
        "confidence key",
        "schema_version: 1\nconfidence: {wide_band: 10}\n",
        ["confidence", "unknown key 'wide_band'"],
    ),
    ("not YAML", "schema_version: 1\nrules: [\n", ["not valid YAML at line"]),
    ("not a mapping", "- just\n- a list\n", ["a policy is a mapping"]),
]


@pytest.mark.parametrize("text,fragments", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_policy_is_one_line_naming_file_rule_and_key(tmp_path, text, fragments):
    p = _write(tmp_path, text)
    with pytest.raises(LabcapError) as e:
        load_policy(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"policy {p}: ")
    for fragment in fragments:
        assert fragment in msg


def test_missing_policy_file(tmp_path):
    with pytest.raises(LabcapError, match="no such file"):
        load_policy(tmp_path / "nope.yaml")


def test_cli_refuses_a_bad_policy_with_exit_2_and_one_line(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "r", {1: {"api.a": [10.0] * 20}}, slos=["p95_ms=500"])
    p = _write(tmp_path, "schema_version: 1\nrules:\n  - id: enterprise\n    wen: 1\n")
    r = invoke("plan", str(run), "--policy", str(p))
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "rule 'enterprise'" in lines[0] and "'wen'" in lines[0]


def test_default_policy_file_is_package_data():
    from importlib import resources

    text = resources.files("labcap.planner").joinpath("default_policy.yaml").read_text()
    assert text.count("\n  - id: ") == len(default_policy().rules)
    assert set(r.action for r in default_policy().rules) <= set(ACTIONS)


def test_policy_from_data_merges_over_the_default():
    policy = policy_from_data({"schema_version": 1, "rules": [{"id": "department", "weight": 7}]})
    assert policy.rule("department").weight == 7
    with pytest.raises(LabcapError, match="no rule 'nope'"):
        policy.rule("nope")
