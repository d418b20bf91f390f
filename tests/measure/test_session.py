"""The session a `labcap run` asks for: its checks, its collectors, and the options its
typed settings give the CLI."""

from __future__ import annotations

import dataclasses

import pytest

from labcap.cli import cli
from labcap.collectors.host import HostCollector
from labcap.collectors.registry import COLLECTORS, CollectorSettings, build_collectors
from labcap.errors import LabcapError
from labcap.measure.session import collector_settings, parse_workers, run_session
from labcap.measure.settings import SessionSettings, StartupOptions
from labcap.planner.text import describe_gate, describe_plan


def test_an_unknown_collector_fails_with_the_valid_names():
    with pytest.raises(LabcapError) as e:
        build_collectors(CollectorSettings(names=("host", "nvme")))
    assert "'nvme'" in str(e.value)
    assert ", ".join(COLLECTORS) in str(e.value)


def test_collectors_start_in_registry_order_whatever_order_they_are_named_in():
    collectors = build_collectors(CollectorSettings(names=("gpu", "host"), gpu_mode="none"))
    assert [type(c) for c in collectors] == [HostCollector]


@pytest.mark.parametrize(
    "target, names",
    [
        ("remote", ("host", "gpu")),
        ("local", ("host", "gpu")),
        ("docker", ("host", "docker", "gpu")),
        ("k8s", ("host", "kubernetes", "gpu")),
    ],
)
def test_each_target_gets_its_collectors(target, names):
    s = SessionSettings(target=target, compose_project="lab", namespaces=("jhub",))
    settings = collector_settings(s)
    assert settings.names == names
    assert settings.docker.compose_project == "lab"
    assert settings.kubernetes.namespaces == ("jhub",)


def test_kubernetes_defaults_to_the_default_namespace_and_kubespawner_pods():
    k8s = collector_settings(SessionSettings(target="k8s")).kubernetes
    assert k8s.namespaces == ("default",)
    assert k8s.selector == "component=singleuser-server"


@pytest.mark.parametrize(
    "settings, message",
    [
        (SessionSettings(), "--host URL is required"),
        (SessionSettings(host="http://127.0.0.1:9", compose_project="x"), "needs --target docker"),
        (SessionSettings(host="http://127.0.0.1:9", users="auto"), "go together"),
        (SessionSettings(host="http://127.0.0.1:9", namespaces=("a",)), "need --target k8s"),
        (SessionSettings(host="http://127.0.0.1:9", spawn_rate=0), "--spawn-rate must be"),
        (SessionSettings(host="http://127.0.0.1:9", scenario="nope"), "unknown scenario 'nope'"),
    ],
)
def test_bad_settings_fail_before_any_work(settings, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LabcapError, match=message):
        run_session(settings, lambda _m: None)
    assert list(tmp_path.iterdir()) == []


def test_workers_are_a_count_or_auto():
    assert parse_workers("0") == 0 and parse_workers(" 4 ") == 4 and parse_workers("auto") >= 1
    with pytest.raises(LabcapError, match="0..256 or auto"):
        parse_workers("257")


@pytest.mark.parametrize(
    "command, record",
    [(("run",), SessionSettings), (("probe", "startup"), StartupOptions)],
)
def test_every_option_is_a_field_of_the_typed_record(command, record):
    cmd = cli
    for name in command:
        cmd = cmd.commands[name]
    # how the command prints (cli.py's own --json, --dry-run, -q, -v), and hidden old spellings
    options = {p.name for p in cmd.params if not p.name.startswith("_deprecated_")}
    options -= {"as_json", "resolve_only", "quiet", "verbose", "fail_on_slo"}
    fields = {f.name for f in dataclasses.fields(record) if "cli" in f.metadata}
    assert options == fields
    for f in dataclasses.fields(record):
        if "cli" in f.metadata:
            param = next(p for p in cmd.params if p.name == f.name)
            assert param.help == f.metadata["cli"]["help"]
            if f.default is not dataclasses.MISSING:
                assert param.default == f.default


def test_plan_text_names_every_step_and_the_recommendation(tmp_path, recorded_run):
    from labcap.planner.recommend import plan_and_recommend

    run = recorded_run(
        tmp_path / "run",
        {5: {"api.get": [20.0] * 50}, 10: {"api.get": [900.0] * 50}},
        slos=["p95_ms=500"],
    )
    text = describe_plan(plan_and_recommend(run, expected_users=8))
    lines = text.splitlines()
    assert lines[1].startswith("  step 1:    5 users  pass")
    assert lines[2].startswith("  step 2:   10 users  fail")
    assert lines[3].startswith("recommendation: ")


def test_gate_text_is_the_summary_then_one_line_per_comparison(tmp_path, recorded_run):
    from labcap.planner.gate import GateThresholds, compare_paths

    steps = {5: {"api.get": [20.0] * 50}}
    a = recorded_run(tmp_path / "a", steps, slos=["p95_ms=500"], window_s=1)
    b = recorded_run(tmp_path / "b", steps, slos=["p95_ms=500"], window_s=1)
    result = compare_paths(a, b, GateThresholds())
    lines = describe_gate(result).splitlines()
    assert lines[0] == result.summary
    assert len(lines) == 1 + len(result.reasons) + len(result.comparisons)
    assert lines[-1].startswith(f"  {result.comparisons[-1].outcome.upper()}")


def test_demo_measures_the_reference_lab_it_starts(tmp_path):
    """demo's session is local (no URL checked, no lab started before the out check): an
    occupied --out is the one error, found before calibrating or starting anything."""
    from click.testing import CliRunner

    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    r = CliRunner().invoke(cli, ["demo", "--users", "1", "--out", str(out)])
    assert r.exit_code == 2
    assert "already holds a run: choose another --out" in r.output
    assert "calibrating" not in r.output and "reference lab" not in r.output
