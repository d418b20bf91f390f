"""One JSON shape per concept (src/labcap/schemas): the schemas are valid, every command with
--json has one, `run --json` and `plan --json` print the same plan shape, and the golden
outputs follow theirs. (Every --json output any test sees is validated too:
tests/support/cli.py calls tests/support/schemas.check_json_output.)"""

from __future__ import annotations

import json
from pathlib import Path

import click
import jsonschema
import pytest

from labcap.cli import cli
from labcap.schemas import HERE, SCHEMA_OF_COMMAND, load_schema
from tests.support.cli import invoke, labcap
from tests.support.runs import synthetic_run
from tests.support.servers import SUPPORT, loopback_server

GOLDEN = Path(__file__).parent / "golden"


def _json_commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _json_commands(cmd, (*path, name))
        elif any(p.name == "as_json" for p in cmd.params):
            yield (*path, name)


def test_every_schema_is_valid_and_every_json_command_has_one():
    names = sorted(p.name.removesuffix(".schema.json") for p in HERE.glob("*.schema.json"))
    for name in names:
        jsonschema.Draft202012Validator.check_schema(load_schema(name))
    assert set(_json_commands()) == set(SCHEMA_OF_COMMAND)
    assert set(SCHEMA_OF_COMMAND.values()) | {"dry-run"} == set(names)


def _golden_json(name: str) -> dict:
    text = (GOLDEN / name).read_text()
    body = text.split("--- stdout\n", 1)[1].split("\n--- stderr", 1)[0]
    return json.loads(body)


@pytest.mark.parametrize(
    ("golden", "schema"),
    [
        ("plan-limit-expected-json.txt", "plan"),
        ("plan-partial-json.txt", "plan"),
        ("gate-regression-json.txt", "gate"),
        ("gate-partial-json.txt", "gate"),
    ],
)
def test_the_golden_outputs_follow_their_schema(golden, schema):
    jsonschema.validate(_golden_json(golden), load_schema(schema))


def test_a_plan_without_its_recommendation_is_not_a_plan():
    data = _golden_json("plan-limit-expected-json.txt")
    del data["recommendation"]
    with pytest.raises(jsonschema.ValidationError, match="'recommendation' is a required"):
        jsonschema.validate(data, load_schema("plan"))


def test_plan_and_gate_json_on_synthetic_runs(tmp_path):
    base = synthetic_run(tmp_path / "base", seed=1)
    current = synthetic_run(tmp_path / "current", seed=2)
    plan = invoke("plan", base, "--json", "--expected-users", "5")  # validated in invoke
    assert plan.exit_code == 0 and json.loads(plan.stdout)["recommendation"]["action"]
    gate = invoke("gate", base, current, "--json")
    assert json.loads(gate.stdout)["outcome"] in ("pass", "regression", "inconclusive")


def test_run_json_is_the_plan_shape(tmp_path):
    out = tmp_path / "run"
    with loopback_server("target_server.py") as url:
        r = labcap(
            "run", "--host", url, "--scenario", SUPPORT / "locustfile_target.py", "--users", "1",
            "--step-duration", "4s", "--settle", "1s", "--window", "1s", "--no-calibrate",
            "--out", out, "--json", "--quiet",
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_json = json.loads(r.stdout)
    plan_json = json.loads(labcap("plan", out, "--json").stdout)
    assert list(run_json) == list(plan_json)  # one shape: the run summary, capacity, advice
    assert run_json["recommendation"]["action"] == plan_json["recommendation"]["action"]


def test_verifys_capacity_check_carries_the_gate_shape():
    """verify's capacity check embeds its gate result: the same shape as gate --json."""
    gate = _golden_json("gate-regression-json.txt")
    verify = {
        "schema_version": "1.0",
        "verdict": "fix-before-cut-over",
        "exit_code": 1,
        "summary": "s",
        "failed_checks": ["capacity"],
        "old": "http://127.0.0.1:1",
        "new": "http://127.0.0.1:2",
        "checks": [
            {"name": "capacity", "status": "fail", "summary": "s", "details": {"gate": gate}}
        ],
    }
    jsonschema.validate(verify, load_schema("verify"))
    del gate["comparisons"]
    with pytest.raises(jsonschema.ValidationError, match="'comparisons' is a required"):
        jsonschema.validate(verify, load_schema("verify"))
