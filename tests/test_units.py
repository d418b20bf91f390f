"""labcap.units: the one parser of durations (Go/Locust form), Kubernetes sizes and CPUs, and
user counts, and every option that takes such a value reading it through that parser."""

from __future__ import annotations

import pytest

from labcap.cli import cli
from labcap.errors import LabcapError
from labcap.units import (
    format_duration,
    parse_cpu_cores,
    parse_duration,
    parse_duration_whole_s,
    parse_memory_bytes,
    parse_memory_gib,
    parse_user_count,
    parse_user_steps,
)
from tests.support.cli import labcap


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20s", 20),
        ("2m", 120),
        ("90", 90),
        ("1.5m", 90),
        ("1h", 3600),
        ("250ms", 0.25),
        ("1m30s", 90),
        ("1h30m", 5400),
        ("1h0m10s", 3610),
        ("2h45m30s", 9930),
        ("1s500ms", 1.5),
    ],
)
def test_durations_in_go_and_locust_form(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s", "0s", "30s1m", "1m1m", "1h 30x", "m"])
def test_a_bad_duration_is_one_line_naming_the_option(text):
    with pytest.raises(LabcapError, match="^--step-duration ") as e:
        parse_duration(text, what="--step-duration")
    assert "\n" not in str(e.value)


def test_zero_is_a_duration_only_where_allowed_and_whole_seconds_round():
    assert parse_duration("0ms", allow_zero=True) == 0
    assert parse_duration_whole_s("1h") == 3600
    with pytest.raises(LabcapError, match="at least 1s"):
        parse_duration_whole_s("500ms")


@pytest.mark.parametrize(("seconds", "text"), [(5400, "1h30m"), (90, "1m30s"), (0.25, "250ms")])
def test_format_duration_round_trips(seconds, text):
    assert format_duration(seconds) == text and parse_duration(text) == seconds


def test_kubernetes_memory_and_cpu_quantities():
    assert parse_memory_bytes("4Gi") == 4 * 2**30
    assert parse_memory_bytes("500Mi") == 500 * 2**20
    assert parse_memory_bytes("2G") == 2 * 10**9
    assert parse_memory_gib("512Mi") == 0.5
    assert parse_memory_gib("4") == 4.0  # labcap's old bare number: GiB
    assert parse_cpu_cores("500m") == 0.5
    assert parse_cpu_cores("2") == 2.0
    for bad, parser in [
        ("4Gb", parse_memory_gib),
        ("0Mi", parse_memory_gib),
        ("1.5x", parse_cpu_cores),
        ("0m", parse_cpu_cores),
    ]:
        with pytest.raises(LabcapError):
            parser(bad, what="--mem-per-user")


def test_user_counts_and_steps():
    assert parse_user_count(" 12 ") == 12
    assert parse_user_steps("5, 10,20") == (5, 10, 20)
    for bad in ("", "5,x", "0,5", "-1", "²"):
        with pytest.raises(LabcapError):
            parse_user_steps(bad)
    with pytest.raises(LabcapError, match="--expected-users '0' is not a positive whole number"):
        parse_user_count("0", what="--expected-users")


def _params(*argv: str) -> dict:
    """The values a command's options hand to its record, as the CLI parses them."""
    cmd = cli
    args = list(argv)
    while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
        cmd = cmd.commands[args.pop(0)]
    return cmd.make_context(cmd.name, args).params


def test_every_option_with_a_unit_reads_it_through_the_one_parser():
    profile = _params(
        "profile",
        "runs/x",
        "--platform",
        "k3s",
        "--out",
        "o",
        "--cpu-per-user",
        "500m",
        "--mem-per-user",
        "4Gi",
        "--idle-timeout",
        "1h30m",
        "--expected-users",
        "40",
    )
    assert (profile["cpu_per_user"], profile["mem_per_user_gib"]) == (0.5, 4.0)
    assert profile["idle_timeout_s"] == 5400 and profile["expected_users"] == 40
    assert _params("plan", "runs/x", "--expected-users", "40")["expected_users"] == 40
    run = _params("run", "--step-duration", "1m30s", "--settle", "15s", "--window", "2s")
    assert run["step_duration"] == "1m30s"
    assert _params("demo", "--step-duration", "1h30m")["step_duration"] == "1h30m"
    assert _params("gate", "a", "b", "--min-effect", "2ms")["min_effect"] == "2ms"
    probe = _params("probe", "startup", "--image", "x", "--timeout", "1m30s", "--interval", "1s")
    assert probe["timeout"] == "1m30s"
    verify = _params(
        "verify", "--old", "http://a", "--new", "http://b", "--capacity-step-duration", "1m30s"
    )
    assert verify["capacity_step"] == "1m30s"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("run", "--step-duration", "1m1m"), "--step-duration '1m1m' is not a duration"),
        (
            ("profile", "r", "--platform", "k3s", "--out", "o", "--mem-per-user", "4GB"),
            "--mem-per-user '4GB' is not a memory size",
        ),
        (
            ("profile", "r", "--platform", "k3s", "--out", "o", "--cpu-per-user", "half"),
            "--cpu-per-user 'half' is not a CPU amount",
        ),
        (("plan", "r", "--expected-users", "many"), "--expected-users 'many' is not a positive"),
    ],
)
def test_a_bad_unit_on_the_command_line_is_one_line_and_exit_2(argv, fragment):
    r = labcap(*argv)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labcap: error:") and fragment in lines[0]
