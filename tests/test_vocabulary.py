"""One vocabulary across commands (labcap.options.VOCABULARY): every command's --help spells
users, step durations, expected users and SLOs one way; the old spellings still work, hidden,
with one deprecation line."""

from __future__ import annotations

import re

import click
import pytest

from labcap.cli import cli
from labcap.cliopts import resolve_deprecated
from tests.support.cli import invoke

# old spelling -> the one the vocabulary uses
RETIRED = {
    "--steps": "--users",
    "--capacity-step": "--capacity-step-duration",
    "--min-effect-ms": "--min-effect",
}


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = list(_commands())


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_each_commands_help_uses_the_one_vocabulary(path, cmd):
    r = invoke(*path, "--help")
    assert r.exit_code == 0
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", r.output))
    assert not flags & set(RETIRED), f"labcap {' '.join(path)} --help shows a retired spelling"
    assert "p95_ms=" not in r.output  # a latency SLO is p95=500ms: the metric, then a duration
    for opt in cmd.params:
        hidden = getattr(opt, "hidden", False)  # a deprecated spelling, not in --help
        if "--users" in getattr(opt, "opts", ()) and not hidden:  # always users per step
            assert "per step" in opt.help


def test_run_and_demo_share_the_users_and_step_duration_options():
    def flags(cmd):
        return {o for p in cmd.params if not getattr(p, "hidden", False) for o in p.opts}

    shared = {"--users", "--step-duration"}
    assert shared <= flags(cli.commands["run"]) and shared <= flags(cli.commands["demo"])
    assert "--expected-users" in flags(cli.commands["plan"]) & flags(cli.commands["profile"])
    plan_opt = next(p for p in cli.commands["plan"].params if p.name == "expected_users")
    profile_opt = next(p for p in cli.commands["profile"].params if p.name == "expected_users")
    assert plan_opt.type.name == profile_opt.type.name == "users"  # one parser, one type (int)


@pytest.mark.parametrize(
    ("argv", "old", "field", "value"),
    [
        (("demo", "--steps", "1,2"), "--steps", "users", "1,2"),
        (
            ("verify", "--old", "http://a", "--new", "http://b", "--capacity-step", "30s"),
            "--capacity-step",
            "capacity_step",
            "30s",
        ),
        (("gate", "a", "b", "--min-effect-ms", "3"), "--min-effect-ms", "min_effect", "3ms"),
        (
            ("verify", "--old", "http://a", "--new", "http://b", "--users", "alice"),
            "--users",
            "users",
            "alice",
        ),
    ],
)
def test_an_old_spelling_still_works_with_one_deprecation_line(argv, old, field, value, capsys):
    cmd = cli.commands[argv[0]]
    with cmd.make_context(argv[0], list(argv[1:])) as ctx:
        values = resolve_deprecated(ctx, ctx.params)  # what the command's record is built from
    warnings = capsys.readouterr().err.strip().splitlines()
    assert warnings == [
        f"labcap: warning: {old} is deprecated; use {RETIRED.get(old, '--sample-users')}"
    ]
    assert values[field] == value and not [k for k in values if k.startswith("_deprecated_")]
