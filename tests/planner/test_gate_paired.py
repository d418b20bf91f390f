"""Paired runs end to end on real loopback targets, and the gate on them.

Two processes of tests/support/service_server.py serve a lognormal service time
(median 100 ms); the slower candidate is the same server started with the configuration
change ``--add-pct 200`` (every service time three times as long), not a mock. Each
paired run is ~10 s of load with 8 users (4 on each side). The gate's margin here is
25 %, far from both the identical targets (0 %) and the slowdown (+200 % on the service
time, less on what users see: the busy machine adds its own delay to both sides), so
the tests check the feature, not the gate's operating characteristic (bench/gate_oc.py).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labcap.store import RunDir
from tests.support.cli import labcap
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parents[1] / "support"
LOCUSTFILE = SUPPORT / "locustfile_target.py"
RUN_ARGS = (
    "--scenario", str(LOCUSTFILE), "--users", "8", "--step-duration", "11s",
    "--settle", "1s", "--window", "1s", "--spawn-rate", "50", "--no-calibrate",
)  # fmt: skip
GATE_ARGS = ("--max-regression", "p95=25%")
ENV = {"LABCAP_TEST_PATH": "/work"}
# a service time long beside what a busy two-core machine adds (tens of ms at p95)
SERVICE = ("--service-ms", "100")


@pytest.fixture(scope="module")
def targets():
    with (
        loopback_server("service_server.py", *SERVICE) as a,
        loopback_server("service_server.py", *SERVICE) as a2,
        loopback_server("service_server.py", *SERVICE, "--add-pct", "200") as slow,
    ):
        yield {"a": a, "a2": a2, "slow": slow}


def paired_run(out: Path, host: str, candidate: str) -> Path:
    r = labcap("run", "--host", host, "--candidate-host", candidate, *RUN_ARGS, "--out", str(out),
               env=ENV)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("baseline: ") and "\ncandidate: " in r.stdout
    return out


@pytest.fixture(scope="module")
def same(targets, tmp_path_factory):
    return paired_run(tmp_path_factory.mktemp("paired") / "same", targets["a"], targets["a2"])


@pytest.fixture(scope="module")
def slower(targets, tmp_path_factory):
    return paired_run(tmp_path_factory.mktemp("paired") / "slow", targets["a"], targets["slow"])


def test_a_paired_run_writes_both_sides_in_one_directory(same, targets):
    run = RunDir.open(same)
    manifest = run.manifest
    assert manifest["schema_version"] == "2.1"
    assert manifest["sides"]["baseline"]["hosts"]["default"] == targets["a"]
    assert manifest["sides"]["candidate"]["hosts"]["default"] == targets["a2"]
    windows = run.windows()
    assert set(windows["side"]) == {"baseline", "candidate"}
    assert set(windows["endpoint"]) == {"target.get"}  # the side tag is split off the name
    per_side = windows[~windows["settling"]].groupby("side")["requests"].sum()
    assert per_side.min() > 100  # both sides were loaded
    # both sides were loaded in the same windows
    by_side = windows.groupby("side")["window_index"].apply(set)
    assert by_side["baseline"] == by_side["candidate"]
    assert list(run.side_view("candidate").windows()["side"].unique()) == ["candidate"]


def test_identical_targets_pass(same):
    r = labcap("gate", str(same), *GATE_ARGS, "--json")
    result = json.loads(r.stdout)
    print("\n" + "\n".join(c["reason"] for c in result["comparisons"]))
    assert r.returncode == 0, r.stdout
    assert result["outcome"] == "pass" and "paired" in result["method"]
    assert {c["metric"] for c in result["comparisons"]} == {"p95", "error_pct"}


def test_a_really_slower_candidate_is_a_regression_with_exit_1(slower, tmp_path):
    junit = tmp_path / "gate.xml"
    r = labcap("gate", str(slower), *GATE_ARGS, "--junit", str(junit))
    print("\n" + r.stdout)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("REGRESSION")
    assert "signed-rank" in r.stdout
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert failures, "the JUnit report names the regression"


def test_too_few_paired_windows_is_inconclusive_with_exit_3(same):
    r = labcap("gate", str(same), "--min-windows", "1000")
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.startswith("INCONCLUSIVE")


def test_one_run_that_is_not_paired_is_a_usage_error(tmp_path):
    from tests.support.runs import synthetic_run

    single = synthetic_run(tmp_path / "single", seed=1)
    r = labcap("gate", str(single))
    assert r.returncode == 2
    assert "not a paired run" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--users", "5"), "even count"),
        (("--users", "auto", "--max-users", "8"), "--users auto"),
        (("--candidate-host", "SAME", "--users", "4"), "needs two deployments"),
    ],
)
def test_bad_paired_options_are_one_line_and_exit_2(targets, tmp_path, args, message):
    candidate = targets["a2"]
    extra = list(args)
    if "SAME" in extra:
        extra, candidate = extra[2:], targets["a"]
    r = labcap("run", "--host", targets["a"], "--candidate-host", candidate, "--scenario",
               str(LOCUSTFILE), "--no-calibrate", *extra, "--out", str(tmp_path / "r"))  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_the_report_of_a_paired_run_shows_both_sides(same, targets, tmp_path):
    """(labcap report, end to end on the paired run above: it is the run this needs.)"""
    out = tmp_path / "report.html"
    r = labcap("report", str(same), "-o", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "Paired run: both sides" in html
    assert f"<h3>baseline <code>{targets['a']}</code></h3>" in html
    assert f"<h3>candidate <code>{targets['a2']}</code></h3>" in html
