"""`labcap run`'s exit codes for CI (planner.exit_codes): an invalid run, missed SLOs with
--fail-on-slo, and SLOs that could not be judged, against a real loopback target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcap.planner.capacity import plan_run
from labcap.planner.exit_codes import (
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_SLO_MISSED,
    run_exit,
)
from tests.support.cli import labcap
from tests.support.servers import loopback_server

LOCUSTFILE = Path(__file__).parents[1] / "support" / "locustfile_target.py"


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


def _run(target: str, out: Path, path: str, *args: str):
    return labcap(
        "run", "--host", target, "--scenario", str(LOCUSTFILE), "--users", "1,2",
        "--step-duration", "3s", "--settle", "1s", "--window", "1s", "--no-calibrate",
        "--out", str(out), "--json", *args, env={"LABCAP_TEST_PATH": path},
    )  # fmt: skip


def test_every_request_failing_is_an_invalid_run_and_exits_3(tmp_path, target):
    r = _run(target, tmp_path / "run", "/status?code=503")
    assert r.returncode == EXIT_INCONCLUSIVE, r.stderr
    plan = json.loads(r.stdout)  # the plan is still printed, and the run directory kept
    # the run stops after its first step on a target failing every request (measure.live)
    assert plan["status"] == "failed"
    assert plan["status_reasons"][0].startswith("stopped early: step 1/2")
    ran = [s for s in plan["steps"] if s["requests"]]
    assert ran and all(s["failures"] == s["requests"] for s in ran)
    assert "labcap: run invalid: stopped early: step 1/2" in r.stderr


def test_missed_slos_exit_4_only_with_fail_on_slo(tmp_path, target):
    # every answer takes 50 ms: max_ms=10 is missed at every step, on real requests
    r = _run(target, tmp_path / "slow", "/slow?ms=50", "--slo", "max_ms=10", "--fail-on-slo")
    assert r.returncode == EXIT_SLO_MISSED, r.stderr
    assert [s["verdict"] for s in json.loads(r.stdout)["steps"]] == ["fail", "fail"]
    assert "labcap: SLOs missed at 1, 2 users (first at 1: target.get max_ms=10)" in r.stderr
    # the same run without the flag is a measurement like any other: exit 0
    assert run_exit(plan_run(str(tmp_path / "slow"))).code == EXIT_OK


def test_slos_met_exit_0_with_fail_on_slo(tmp_path, target):
    r = _run(target, tmp_path / "ok", "/fast", "--slo", "max_ms=5000", "--fail-on-slo")
    assert r.returncode == EXIT_OK, r.stderr
    assert [s["verdict"] for s in json.loads(r.stdout)["steps"]] == ["pass", "pass"]


def test_slos_that_could_not_be_judged_are_inconclusive_not_a_pass(tmp_path, recorded_run):
    # 30 requests a step: a p99 needs 100; nothing breached, nothing judged
    run = recorded_run(tmp_path / "r", {1: {"a": [5.0] * 30}, 2: {"a": [5.0] * 30}},
                       slos=["p99_ms=100"])  # fmt: skip
    plan = plan_run(str(run))
    assert [s.verdict for s in plan.steps] == ["inconclusive", "inconclusive"]
    verdict = run_exit(plan, fail_on_slo=True)
    assert verdict.code == EXIT_INCONCLUSIVE
    assert "steps not judged: 1 users (inconclusive), 2 users (inconclusive)" in verdict.message
    assert run_exit(plan).code == EXIT_OK
