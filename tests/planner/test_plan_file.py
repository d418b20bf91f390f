"""``labcap plan`` saves its decision inputs beside the run (plan.json), atomically and
versioned; a bad or newer file is one clear line, never a traceback."""

from __future__ import annotations

import json
import os

import pytest

from labcap.errors import LabcapError
from labcap.planner.plan_file import (
    PLAN_FILE,
    PLAN_FILE_SCHEMA,
    DecisionInputs,
    merge_inputs,
    read_saved_inputs,
)
from tests.support.cli import labcap
from tests.support.runs import synthetic_run


@pytest.fixture
def run(tmp_path):
    return synthetic_run(tmp_path / "run", 1, stable=True)


def test_plan_with_expected_users_saves_its_inputs_and_answer(run, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("schema_version: 1\nrules: []\n")
    r = labcap("plan", run, "--expected-users", "30", "--growth-per-month", "5%",
               "--policy", policy, "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # saving is quiet: the golden stderr stays as it was
    saved = json.loads((run / PLAN_FILE).read_text())
    assert saved["schema_version"] == PLAN_FILE_SCHEMA
    assert saved["inputs"] == {
        "expected_users": 30,
        "growth_pct_per_month": 5.0,
        "policy_file": str(policy.resolve()),
    }
    assert saved["outcome"] == json.loads(r.stdout)  # what plan printed
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]  # atomic: no temp left
    inputs = read_saved_inputs(run)
    assert (inputs.expected_users, inputs.growth_pct_per_month, inputs.source) == (30, 5.0, "saved")


def test_plan_without_decision_inputs_leaves_the_saved_ones_alone(run):
    assert labcap("plan", run, "--expected-users", "12").returncode == 0
    before = (run / PLAN_FILE).read_bytes()
    assert labcap("plan", run, "--json").returncode == 0
    assert (run / PLAN_FILE).read_bytes() == before


def test_a_bad_option_writes_nothing(run):
    r = labcap("plan", run, "--expected-users", "-3")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert not (run / PLAN_FILE).exists()


def test_a_run_where_plan_json_cannot_be_written_still_gets_its_plan(run):
    # a directory in plan.json's place: the write fails as on a read-only run directory
    # (which root, as CI runs, could still write)
    (run / PLAN_FILE).mkdir()
    r = labcap("plan", run, "--expected-users", "12")
    assert r.returncode == 0 and "recommendation:" in r.stdout
    assert "decision inputs not saved" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": "9.0", "inputs": {}}', "written by a newer labcap"),
        ('{"schema_version": "1.0"}', "not a labcap plan file"),
        ('{"schema_version": "1.0", "inputs": {"expected_users": 0}}', "not a positive"),
    ],
)
def test_a_bad_plan_file_is_one_clear_line(run, content, message):
    (run / PLAN_FILE).write_text(content)
    with pytest.raises(LabcapError, match=message):
        read_saved_inputs(run)
    r = labcap("report", run)
    assert r.returncode == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_options_override_the_saved_inputs_one_by_one():
    saved = DecisionInputs(40, 5.0, None, "saved", "2026-01-01T00:00:00+00:00")
    assert merge_inputs(DecisionInputs(), saved) == saved
    mixed = merge_inputs(DecisionInputs(expected_users=80, source="given"), saved)
    assert (mixed.expected_users, mixed.growth_pct_per_month, mixed.source) == (80, 5.0, "mixed")
    given = DecisionInputs(90, 1.0, None, "given")
    assert merge_inputs(given, saved) == given
    assert merge_inputs(DecisionInputs(), None).source == "none"
