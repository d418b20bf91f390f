"""Property tests: every loader and parser returns a value or raises LabcapError, nothing else.

Arbitrary text, arbitrary JSON in a manifest, arbitrary bytes in a journal:
whatever a user or a damaged disk hands labcap ends as a valid value or one
clear LabcapError line, never a traceback. (The policy loader has its own
property tests in tests/planner/test_policy_fuzz.py; here it is fed whole files.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labcap.errors import LabcapError
from labcap.model import parse_duration, parse_user_steps
from labcap.slo import parse_slo
from labcap.store import JOURNAL, MANIFEST, RunDir, read_journal
from tests.conftest import record_run

# LABCAP_PROPERTY_EXAMPLES=2000 for a deeper search than CI's
SCALE = int(os.environ.get("LABCAP_PROPERTY_EXAMPLES", "300"))
FAST = settings(max_examples=SCALE, deadline=None)
SLOW = settings(
    max_examples=max(SCALE // 5, 20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# text that looks like the real thing often, and like anything else sometimes
fragments = st.sampled_from(
    ["5", "10", "0", "-1", "1.5", "2m", "20s", "ms", "h", ",", ":", "=", " ", "p95_ms", "error_pct"]
    + ["hub.spawn_ready", "nan", "inf", "1e309", "²", "٣", "\x00", "%", "off", "1g.10gb", "=3"]
)
texty = st.one_of(st.text(max_size=30), st.lists(fragments, max_size=6).map("".join))


def _value_or_labcap_error(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except LabcapError as e:
        assert str(e) and "\n" not in str(e).strip()
        return None


@FAST
@given(texty)
def test_parse_duration(text):
    v = _value_or_labcap_error(parse_duration, text, what="--step-duration")
    assert v is None or (v > 0 and v == v)


@FAST
@given(texty)
def test_parse_user_steps(text):
    v = _value_or_labcap_error(parse_user_steps, text)
    assert v is None or (v and all(isinstance(u, int) and u > 0 for u in v))


@FAST
@given(texty)
def test_parse_slo(text):
    v = _value_or_labcap_error(parse_slo, text)
    assert v is None or (0 <= v.threshold < float("inf") and parse_slo(v.expression) == v)


@FAST
@given(texty, texty)
def test_plan_option_parsers(users, growth):
    from labcap.planner.recommend import parse_expected_users, parse_growth

    v = _value_or_labcap_error(parse_expected_users, users)
    assert v is None or v > 0
    g = _value_or_labcap_error(parse_growth, growth)
    assert g is None or g > -100


@FAST
@given(st.lists(texty, max_size=3), texty, texty, texty)
def test_gate_option_parsers(limits, effect, alpha, windows):
    from labcap.planner.gate import thresholds_from_options

    _value_or_labcap_error(
        thresholds_from_options, limits, min_effect_ms=effect, alpha=alpha, min_windows=windows
    )


@FAST
@given(texty)
def test_target_url_parser(text):
    from labcap.measure.preflight import check_url

    v = _value_or_labcap_error(check_url, text)
    assert v is None or (v[0] and 0 < v[1] < 65536)


@FAST
@given(
    gpus=st.integers(-2, 9),
    sharing=st.sampled_from(["none", "time-slicing", "mig", "mps", ""]),
    gpu_users=st.integers(-2, 40),
    replicas=st.none() | st.integers(-2, 50),
    model=st.none() | st.sampled_from(["A100-40GB", "H100-80GB", "A30-24GB", "T4", ""]),
    profiles=st.lists(texty | st.sampled_from(["1g.10gb", "3g.40gb=2", "7g.80gb", "1g.5gb=9"])),
)
def test_profile_gpu_options(gpus, sharing, gpu_users, replicas, model, profiles):
    from labcap.deploy_profiles.gpu import parse_mig_profile, plan_gpus

    for p in profiles:
        _value_or_labcap_error(parse_mig_profile, p)
    _value_or_labcap_error(
        plan_gpus,
        gpus,
        sharing,
        gpu_users,
        replicas=replicas,
        gpu_model=model,
        mig_profiles=tuple(profiles[:3]),
    )


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return record_run(
        tmp_path_factory.mktemp("good") / "run",
        {1: {"api.get": [10.0] * 20}, 3: {"api.get": [20.0] * 20}},
        slos=["p95_ms=100", "error_pct=1"],
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texty,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texty, inner, max_size=3),
    max_leaves=12,
)
manifest_paths = st.sampled_from(
    [
        ("schema_version",),
        ("status",),
        ("status_reasons",),
        ("scenario",),
        ("scenario", "name"),
        ("slos",),
        ("load",),
        ("load", "window_s"),
        ("load", "spawn_rate"),
        ("load", "steps"),
        ("load", "steps", 0),
        ("load", "steps", 0, "users"),
        ("load", "steps", 1, "duration_s"),
        ("load", "steps", 1, "settle_s"),
        ("load", "steps", 0, "index"),
        ("target",),
        ("pid",),
    ]
)


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _plan_or_error(run_dir: Path) -> None:
    from labcap.planner.capacity import plan_run

    try:
        plan_run(str(run_dir))
    except LabcapError as e:
        assert str(e) and "\n" not in str(e).strip()


@SLOW
@given(edits=st.lists(st.tuples(manifest_paths, json_values), min_size=1, max_size=3))
def test_manifest_loader_and_planner(good_run, edits):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(good_run, run)
        m = json.loads((run / MANIFEST).read_text())
        for path, value in edits:
            try:
                _set(m, path, value)
            except (KeyError, IndexError, TypeError):
                continue  # the parent was replaced by an earlier edit
        (run / MANIFEST).write_text(json.dumps(m))
        _plan_or_error(run)


@SLOW
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_manifest_bytes(good_run, data):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(good_run, run)
        (run / MANIFEST).write_bytes(data)
        _plan_or_error(run)


record_fields = st.sampled_from(
    ["kind", "window_index", "step_index", "start_s", "end_s", "settling", "target_users"]
    + ["active_users", "endpoint", "method", "requests", "failures", "p95_us", "hdr", "count"]
)


@SLOW
@given(
    lines=st.lists(
        st.dictionaries(record_fields, json_values, max_size=8).map(json.dumps)
        | st.text(max_size=40),
        max_size=6,
    ),
    keep=st.integers(0, 6),
    tail=st.binary(max_size=30),
)
def test_journal_reader_and_planner(good_run, lines, keep, tail):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(good_run, run)
        good_lines = (run / JOURNAL).read_text().splitlines(keepends=True)[:keep]
        body = "".join(good_lines) + "".join(line.replace("\n", " ") + "\n" for line in lines)
        (run / JOURNAL).write_bytes(body.encode() + tail)
        try:
            records = read_journal(run / JOURNAL)
        except LabcapError:
            records = []
        assert all(isinstance(r, dict) for r in records)
        for read in (lambda: RunDir.open(run).windows(), lambda: RunDir.open(run).failures()):
            _value_or_labcap_error(read)
        _plan_or_error(run)
