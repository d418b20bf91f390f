"""Property: whatever a policy file holds, loading it fails only with one LabcapError line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labcap.errors import LabcapError
from labcap.planner.policy import (
    ACTIONS,
    METRICS,
    OPS,
    evaluate_rules,
    load_policy,
    policy_from_data,
)

WORDS = [
    "schema_version",
    "rules",
    "startup_endpoints",
    "confidence",
    "id",
    "when",
    "action",
    "message",
    "weight",
    "enabled",
    "metric",
    "op",
    "value",
    "all",
    "any",
    "not",
    "wide_band_pct",
    *list(METRICS)[:8],
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([*METRICS, *OPS, *ACTIONS, "complete", "latency", "{expected_users:.1f}"]),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=6), st.integers(), st.none())
yamlish = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=40,
)
condition = st.recursive(
    st.fixed_dictionaries(
        {
            "metric": st.sampled_from(list(METRICS)) | scalars,
            "op": st.sampled_from(list(OPS)) | scalars,
            "value": scalars | st.lists(scalars, max_size=3),
        }
    ),
    lambda inner: st.dictionaries(
        st.sampled_from(["all", "any", "not"]), st.lists(inner, max_size=3) | inner, max_size=1
    ),
    max_leaves=6,
)
rule = st.fixed_dictionaries(
    {"id": st.sampled_from(["department", "enterprise", "new-rule", "x"]) | scalars},
    optional={
        "when": condition | yamlish,
        "action": st.sampled_from(list(ACTIONS)) | scalars,
        "message": st.sampled_from(["ok", "{expected_users} users", "{nope}", ""]) | scalars,
        "weight": scalars,
        "enabled": scalars,
        "extra": yamlish,
    },
)
document = st.one_of(
    yamlish,
    st.fixed_dictionaries(
        {"schema_version": st.sampled_from([1, 2, 0, "1", None, True, 1.0])},
        optional={
            "rules": st.lists(rule, max_size=4) | yamlish,
            "confidence": st.dictionaries(st.sampled_from(["wide_band_pct", "x"]), scalars)
            | yamlish,
            "startup_endpoints": st.lists(scalars, max_size=3) | yamlish,
        },
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_loader_raises_nothing_but_labcap_error(data):
    try:
        policy = policy_from_data(data, "fuzz.yaml")
    except LabcapError as e:
        assert "\n" not in str(e) and str(e).startswith("policy fuzz.yaml: ")
        return
    # a policy that loads also evaluates, on any measurements
    evaluate_rules(policy, dict.fromkeys(METRICS))
    for r in policy.rules:
        r.render({"expected_users": 3, "binding_kind": "latency"})


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_file_text_loads_or_fails_as_labcap_error(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "p.yaml"
        p.write_text(text)
        try:
            load_policy(p)
        except LabcapError as e:
            assert "\n" not in str(e)
