"""The CI gate on synthetic runs with known relations: same distribution, 20 % slower,
partial, incomparable, missing data; its JUnit XML and the CLI's exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

from labcap.errors import LabcapError
from labcap.planner.capacity import plan_run
from labcap.planner.gate import (
    INCONCLUSIVE,
    PASS,
    REGRESSION,
    GateThresholds,
    MaxRegression,
    compare_paths,
    parse_max_regression,
    thresholds_from_options,
)
from labcap.reports.junit import junit_xml, write_junit
from tests.support.cli import labcap
from tests.support.runs import ENDPOINTS, USERS, synthetic_run

SEEDS = range(40)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """For each seed: a baseline, a run of the same distribution and one 20 % slower."""
    root = tmp_path_factory.mktemp("gate-synthetic")
    out = []
    for seed in SEEDS:
        base = synthetic_run(root / f"base{seed}", 1000 + seed)
        same = synthetic_run(root / f"same{seed}", 2000 + seed)
        slow = synthetic_run(root / f"slow{seed}", 3000 + seed, scale=1.2)
        out.append((base, same, slow))
    return out


def test_identical_distributions_pass_in_at_least_95_percent_of_seeds(pairs):
    results = [compare_paths(base, same) for base, same, _ in pairs]
    outcomes = Counter(r.outcome for r in results)
    alarms = outcomes[REGRESSION] / len(results)
    print(
        f"\nidentical synthetic runs, {len(results)} seeds: {dict(outcomes)}; "
        f"false-alarm (regression) rate {alarms:.1%}"
    )
    assert outcomes[PASS] >= 0.95 * len(results)
    assert all(len(r.comparisons) == len(USERS) * len(ENDPOINTS) * 2 for r in results)


def test_twenty_percent_slower_fails_in_nearly_all_seeds(pairs):
    results = [compare_paths(base, slow) for base, _, slow in pairs]
    caught = [r for r in results if r.outcome == REGRESSION]
    print(f"\n20 % slowdown detected in {len(caught)}/{len(results)} seeds")
    assert len(caught) >= 0.95 * len(results)
    p95 = [c for c in results[0].comparisons if c.metric == "p95"]
    assert all(0.1 < c.effect < 0.3 and c.effect_ci[0] < c.effect < c.effect_ci[1] for c in p95)
    errors = [c for r in results for c in r.comparisons if c.metric == "error_pct"]
    assert all(c.outcome == PASS for c in errors)  # slower, not failing more


def test_step_quantiles_are_those_of_labcap_plan(pairs):
    base, _, slow = pairs[0]
    result = compare_paths(base, slow)
    planned = {(e.step_index, e.endpoint): e for e in plan_run(str(base)).endpoints}
    for c in result.comparisons:
        if c.metric == "p95":
            assert c.baseline == planned[(c.step_index, c.endpoint)].p95_ms


def test_partial_run_never_passes(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    partial = synthetic_run(tmp_path / "cur", 2, status="partial", stop_at_s=10)
    result = compare_paths(base, partial)
    assert result.outcome == INCONCLUSIVE and result.exit_code == 3
    assert "current run is partial (SIGINT received)" in result.reasons
    step2 = [c for c in result.comparisons if c.step_index == 1]
    assert step2 and all(c.outcome == INCONCLUSIVE for c in step2)
    assert "current has 2 steady windows" in step2[0].reason


def test_failed_run_without_windows_is_inconclusive(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    failed = synthetic_run(tmp_path / "cur", 2, status="failed")
    for table in ("windows.parquet", "failures.parquet"):
        (failed / table).unlink()
    result = compare_paths(base, failed)
    assert result.exit_code == 3 and result.reasons[0].startswith("current run is failed")
    assert all(c.outcome == INCONCLUSIVE and "no requests in current" in c.reason
               for c in result.comparisons)  # fmt: skip


def test_partial_run_whose_complete_steps_pass_is_still_inconclusive(tmp_path):
    base = synthetic_run(tmp_path / "base", 1, users=(5,))
    partial = synthetic_run(tmp_path / "cur", 2, users=(5,), status="partial")
    result = compare_paths(base, partial)
    assert {c.outcome for c in result.comparisons} == {PASS}
    assert result.outcome == INCONCLUSIVE and result.exit_code == 3


def test_a_regression_measured_in_a_partial_run_is_reported(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    partial = synthetic_run(tmp_path / "cur", 2, scale=1.5, status="partial", stop_at_s=10)
    assert compare_paths(base, partial).exit_code == 1


@pytest.mark.parametrize(
    "change,fragment",
    [
        ({"scenario": "mlflow"}, "different scenarios: baseline 'synthetic', current 'mlflow'"),
        ({"users": (5, 20)}, "different user steps: baseline [5, 10], current [5, 20]"),
        ({"slos": ("p95_ms=800",)}, "different SLOs"),
        ({"window_s": 0.5}, "different window lengths"),
    ],
)
def test_incomparable_runs_are_inconclusive(tmp_path, change, fragment):
    base = synthetic_run(tmp_path / "base", 1)
    cur = synthetic_run(tmp_path / "cur", 1, **change)  # same seed: only the setting differs
    result = compare_paths(base, cur)
    assert result.outcome == INCONCLUSIVE and result.exit_code == 3
    assert result.comparisons == () and any(fragment in r for r in result.reasons)


def test_slo_order_and_spelling_do_not_make_runs_incomparable(tmp_path):
    base = synthetic_run(tmp_path / "base", 1, slos=("p95_ms=500", "error_pct=1"))
    cur = synthetic_run(tmp_path / "cur", 2, slos=("error_pct=1.0", "p95_ms = 500"))
    assert compare_paths(base, cur).reasons == ()


def test_missing_endpoint_is_inconclusive(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    cur = synthetic_run(tmp_path / "cur", 2, endpoints=("hub.login",))
    result = compare_paths(base, cur)
    assert result.outcome == INCONCLUSIVE
    missing = [c for c in result.comparisons if c.endpoint == "mlflow.search"]
    assert len(missing) == 4 and all(c.outcome == INCONCLUSIVE for c in missing)
    assert "no requests in current (step 1, 5 users)" in missing[0].reason
    assert {c.outcome for c in result.comparisons if c.endpoint == "hub.login"} == {PASS}


def test_new_endpoint_without_baseline_is_inconclusive(tmp_path):
    base = synthetic_run(tmp_path / "base", 1, endpoints=("hub.login",))
    cur = synthetic_run(tmp_path / "cur", 2)
    result = compare_paths(base, cur)
    assert result.outcome == INCONCLUSIVE
    assert all("no requests in baseline" in c.reason for c in result.comparisons
               if c.endpoint == "mlflow.search")  # fmt: skip


def test_too_few_windows_is_inconclusive(tmp_path):
    base = synthetic_run(tmp_path / "base", 1, step_s=4)  # 3 steady windows per step
    cur = synthetic_run(tmp_path / "cur", 2, step_s=4)
    result = compare_paths(base, cur)
    assert result.outcome == INCONCLUSIVE
    assert all(c.outcome == INCONCLUSIVE for c in result.comparisons)
    assert "baseline has 3 steady windows with successful requests" in result.comparisons[0].reason
    assert "(the test needs 5)" in result.comparisons[0].reason
    th = GateThresholds(min_windows=3)
    assert compare_paths(base, cur, th).outcome == PASS


def test_endpoint_whose_requests_all_failed_has_no_latency_to_compare(tmp_path):
    base = synthetic_run(tmp_path / "base", 1, users=(5,))
    cur = synthetic_run(tmp_path / "cur", 2, users=(5,), error_pct=100)
    result = compare_paths(base, cur)
    by_metric = {c.metric: c for c in result.comparisons if c.endpoint == "hub.login"}
    assert by_metric["p95"].outcome == INCONCLUSIVE
    assert "current has 0 steady windows with successful requests" in by_metric["p95"].reason
    assert by_metric["error_pct"].outcome == REGRESSION and by_metric["error_pct"].current == 100
    assert result.exit_code == 1  # the regression is what the build should hear about


def test_slowdown_below_the_noise_floor_passes(tmp_path):
    base = synthetic_run(tmp_path / "base", 1, median_ms=0.3)
    cur = synthetic_run(tmp_path / "cur", 2, median_ms=0.3, scale=1.5)  # +50 %, +0.3 ms
    result = compare_paths(base, cur)
    p95 = [c for c in result.comparisons if c.metric == "p95"]
    assert all(c.effect > 0.3 and c.delta < 1 and c.p_value < 0.05 for c in p95)
    assert all("within the 1 ms noise floor" in c.reason for c in p95)
    assert result.outcome == PASS
    strict = GateThresholds(min_effect_ms=0.1)
    assert compare_paths(base, cur, strict).outcome == REGRESSION


def test_error_rate_regression_and_margin(tmp_path):
    # 4000 requests per step and endpoint: enough to resolve a 0.5-point margin
    base = synthetic_run(tmp_path / "base", 1, error_pct=0.2, requests=4000)
    worse = synthetic_run(tmp_path / "worse", 2, error_pct=3, requests=4000)
    slight = synthetic_run(tmp_path / "slight", 3, error_pct=0.4, requests=4000)
    result = compare_paths(base, worse)
    errors = [c for c in result.comparisons if c.metric == "error_pct"]
    assert result.outcome == REGRESSION and all(c.outcome == REGRESSION for c in errors)
    assert all(c.unit == "%" and 2 < c.delta < 4 and c.effect == c.delta for c in errors)
    assert {c.outcome for c in compare_paths(base, slight).comparisons} == {PASS}


def test_error_rate_too_noisy_for_its_margin_is_inconclusive(tmp_path):
    base = synthetic_run(tmp_path / "base", 1, error_pct=0.2, requests=300, users=(5,))
    cur = synthetic_run(tmp_path / "cur", 3, error_pct=0.4, requests=300, users=(5,))
    errors = {
        c.endpoint: c for c in compare_paths(base, cur).comparisons if c.metric == "error_pct"
    }
    # 0 → 0.78 % of ~260 requests: could be noise, could be a 1-point regression
    noisy = errors["hub.login"]
    assert (
        noisy.outcome == INCONCLUSIVE
        and "too noisy to resolve the 0.5-point margin" in noisy.reason
    )
    assert noisy.effect_ci[1] > 0.5
    assert errors["mlflow.search"].outcome == PASS  # no failure in either run


def test_other_metrics_can_be_gated_and_switched_off(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    slow = synthetic_run(tmp_path / "slow", 2, scale=1.3)
    th = thresholds_from_options(["p50=10%", "p99=50%", "error_pct=off"])
    assert th.limits_for("hub.login") == [("p50", 0.10), ("p95", 0.10), ("p99", 0.50)]
    result = compare_paths(base, slow, th)
    outcomes = {c.metric: c.outcome for c in result.comparisons}
    assert outcomes == {"p50": REGRESSION, "p95": REGRESSION, "p99": PASS}


def test_an_endpoint_can_have_limits_of_its_own(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    slow = synthetic_run(tmp_path / "slow", 2, scale={"hub.login": 1.3, "mlflow.search": 1.0})
    th = thresholds_from_options(["hub.login:p95=50%", "mlflow.search:error_pct=off"])
    assert th.limits_for("hub.login") == [("p95", 0.50), ("error_pct", 0.5)]
    assert th.limits_for("mlflow.search") == [("p95", 0.10)]
    result = compare_paths(base, slow, th)
    assert result.outcome == PASS
    assert {(c.endpoint, c.metric): c.limit for c in result.comparisons} == {
        ("hub.login", "p95"): 0.5,
        ("hub.login", "error_pct"): 0.5,
        ("mlflow.search", "p95"): 0.1,
    }
    assert compare_paths(base, slow).outcome == REGRESSION  # under the default 10 %


@pytest.mark.parametrize(
    "text,expected",
    [
        ("p95=10%", MaxRegression("p95", 0.10)),
        ("p95_ms=10", MaxRegression("p95", 0.10)),
        (" p99 = 25 % ", MaxRegression("p99", 0.25)),
        ("error_pct=0.5", MaxRegression("error_pct", 0.5)),
        ("error_pct=1pp", MaxRegression("error_pct", 1.0)),
        ("p50=off", MaxRegression("p50", None)),
        ("hub.spawn_ready:p95=50%", MaxRegression("p95", 0.5, "hub.spawn_ready")),
    ],
)
def test_parse_max_regression(text, expected):
    assert parse_max_regression(text) == expected


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("p97=10%", "unknown metric 'p97'; valid metrics are p50, p90, p95, p99, error_pct"),
        ("p95=lots", "'lots' is not a number"),
        ("p95", "is malformed"),
        ("p95=-5%", "must be a finite number >= 0"),
        ("p95=2pp", "latency limits are relative"),
    ],
)
def test_bad_max_regression_says_why(text, fragment):
    with pytest.raises(LabcapError, match=None) as e:
        parse_max_regression(text)
    assert fragment in str(e.value)


def test_bad_numeric_options_say_why():
    with pytest.raises(LabcapError, match="--alpha '2' must lie between"):
        thresholds_from_options(alpha="2")
    with pytest.raises(LabcapError, match="--min-effect-ms 'soon' is not a number"):
        thresholds_from_options(min_effect_ms="soon")
    with pytest.raises(LabcapError, match="nothing to check"):
        thresholds_from_options(["p95=off", "error_pct=off"])
    assert thresholds_from_options(min_effect_ms="2.5ms").min_effect_ms == 2.5


def test_result_is_json_and_deterministic(pairs):
    base, _, slow = pairs[1]
    a, b = compare_paths(base, slow).to_dict(), compare_paths(base, slow).to_dict()
    assert a == b  # same seed, same bootstrap interval
    a = json.loads(json.dumps(a))
    assert a["exit_code"] == 1 and a["comparisons"][0]["step"] == "step1_5users"
    assert a["thresholds"]["max_regressions"][0]["expression"] == "p95=10%"


# ---------------------------------------------------------------- JUnit


def _cases(xml: bytes):
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    return root, root.findall("./testsuite/testcase")


def test_junit_has_one_testcase_per_step_endpoint_metric(pairs, tmp_path):
    base, _, slow = pairs[2]
    result = compare_paths(base, slow)
    path = write_junit(result, tmp_path / "reports" / "gate.xml")
    root, cases = _cases(path.read_bytes())
    items = [c for c in cases if c.get("classname") != "labcap.gate.runs"]
    names = {(c.get("classname"), c.get("name")) for c in items}
    assert len(items) == len(names) == len(USERS) * len(ENDPOINTS) * 2
    assert ("labcap.gate.step2_10users", "hub.login p95") in names
    assert ("labcap.gate.step1_5users", "mlflow.search error_pct") in names
    failed = {c.get("name") for c in items if c.find("failure") is not None}
    assert failed == {"hub.login p95", "mlflow.search p95"}
    message = items[0].find("failure").get("message")
    assert "ms (+" in message and "p=" in message
    suite = root.find("testsuite")
    assert suite.get("failures") == "4" and suite.get("errors") == "0"
    assert suite.get("tests") == str(len(cases))
    assert not list(tmp_path.glob("reports/.gate.xml.*"))  # atomic: no temp file left


def test_junit_reports_inconclusive_items_as_errors(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    cur = synthetic_run(tmp_path / "cur", 2, endpoints=("hub.login",), status="partial")
    root, cases = _cases(junit_xml(compare_paths(base, cur)))
    errors = {c.get("name"): c.find("error") for c in cases if c.find("error") is not None}
    assert (
        errors["runs complete and comparable"].get("message")
        == "current run is partial (SIGINT received)"
    )
    assert "no requests in current" in errors["mlflow.search p95"].get("message")
    n_errors = sum(c.find("error") is not None for c in cases)
    assert root.find("testsuite").get("errors") == str(n_errors) == "5"  # runs + 2 steps × 2


def test_junit_of_incomparable_runs_has_the_reason(tmp_path):
    base = synthetic_run(tmp_path / "base", 1)
    cur = synthetic_run(tmp_path / "cur", 1, scenario="mlflow")
    _, cases = _cases(junit_xml(compare_paths(base, cur)))
    assert len(cases) == 1 and "different scenarios" in cases[0].find("error").get("message")


# ---------------------------------------------------------------- CLI


def test_cli_exit_codes(pairs, tmp_path):
    base, same, slow = pairs[0]
    partial = synthetic_run(tmp_path / "partial", 5, status="partial")
    junit = tmp_path / "junit.xml"

    ok = labcap("gate", str(base), str(same))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("PASS") and "hub.login p95" in ok.stdout

    bad = labcap("gate", str(base), str(slow), "--junit", str(junit), "--json")
    assert bad.returncode == 1, bad.stderr
    data = json.loads(bad.stdout)  # stdout holds the JSON only
    assert data["outcome"] == "regression" and data["exit_code"] == 1
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "4"

    unsure = labcap("gate", str(base), str(partial))
    assert unsure.returncode == 3, unsure.stderr
    assert "current run is partial" in unsure.stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--max-regression", "p95=lots"], "'lots' is not a number"),
        (["--max-regression", "p97=10%"], "unknown metric 'p97'"),
        (["--min-effect", "x"], "--min-effect 'x' is not a duration"),
        (["--alpha", "0"], "--alpha '0' must lie between"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(pairs, args, fragment):
    base, same, _ = pairs[0]
    r = labcap("gate", str(base), str(same), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labcap: error:") and fragment in lines[0]


def test_the_old_min_effect_ms_spelling_warns_once_and_still_reads_milliseconds(pairs):
    base, same, _ = pairs[0]
    r = labcap("gate", str(base), str(same), "--min-effect-ms", "x")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "labcap: warning: --min-effect-ms is deprecated; use --min-effect",
        "labcap: error: --min-effect 'xms' is not a duration: use e.g. 90s, 1m30s, 1h30m or 90 "
        "(seconds)",
    ]


def test_cli_nonexistent_run_exits_2(pairs, tmp_path):
    r = labcap("gate", str(pairs[0][0]), str(tmp_path / "nope"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"labcap: error: {tmp_path / 'nope'}: no such run directory"


def test_cli_help_documents_exit_codes():
    r = labcap("gate", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "0 pass, 1 regression, 2 usage or input error, 3 inconclusive" in text
