"""The bad-input corpus: every case is one line on stderr, exit 2, nothing written.

Each case runs the real ``labcap`` CLI in a subprocess whose working directory
is the case's own temporary directory, and compares that directory's whole
content (names and bytes) before and after: a default ``runs/...`` directory,
a half-written profile or a stray temp file all count as written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import record_run
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parent.parent / "support"
LOCUSTFILE = str(SUPPORT / "locustfile_target.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Case:
    name: str
    # {run} a good run, {dir} the case dir, {port} a closed port, {url} a live loopback target
    argv: tuple[str, ...]
    expect: str  # a substring of the one stderr line: what is wrong and where
    files: dict[str, str | bytes] = field(default_factory=dict)  # created before the call
    edit: Callable[[Path], None] | None = None  # applied to the copy of the good run
    needs_option: str | None = None  # skip when another engineer's option is not there yet


def _manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        m = json.loads((run / "manifest.json").read_text())
        change(m)
        (run / "manifest.json").write_text(json.dumps(m))

    return edit


def _write(name: str, data: str | bytes) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        p = run / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    return edit


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        p = run / name
        p.write_bytes(p.read_bytes()[:keep])

    return edit


MANIFEST = "manifest.json"
RUN = ("run", "--host", "http://127.0.0.1:{port}", "--scenario", LOCUSTFILE)
RUN_OK = (*RUN, "--users", "1", "--step-duration", "2s", "--out", "{dir}/out")
LIVE = ("run", "--host", "{url}", "--scenario")  # + locustfile
LIVE_TAIL = RUN_OK[5:]
POLICY = ("plan", "{run}", "--policy", "{dir}/policy.yaml")
PROFILE = ("profile", "{run}", "--platform", "compose", "--out", "{dir}/profile")
BAD_OP = (
    "schema_version: 1\nrules:\n- id: x\n  when: {metric: max_users_at_slo, op: '~', value: 1}\n"
    "  action: tune-compose\n  message: m\n"
)

CASES = [
    # --- CLI arguments
    Case("unknown-option", ("run", "--frobnicate"), "No such option '--frobnicate'"),
    Case("unknown-command", ("frobnicate",), "No such command 'frobnicate'"),
    Case("bad-choice", ("run", "--target", "mars"), "'--target': 'mars' is not one of"),
    Case("spawn-rate-text", (*RUN, "--spawn-rate", "fast"), "'--spawn-rate': 'fast' is not a"),
    Case("spawn-rate-zero", (*RUN, "--spawn-rate", "0"), "--spawn-rate must be greater than"),
    Case("unknown-scenario", (*RUN[:3], "--scenario", "nope"), "valid scenarios are"),
    Case("missing-locustfile", (*RUN[:3], "--scenario", "x/l.py"), "x/l.py does not exist"),
    Case("no-host", ("run", "--scenario", "mlflow"), "--host URL is required"),
    Case("compose-without-docker", (*RUN, "--compose-project", "p"), "needs --target docker"),
    # --- step and duration specs
    Case("users-not-number", (*RUN, "--users", "5,x"), "user step 'x' in '5,x'"),
    Case("users-empty", (*RUN, "--users", ","), "user steps ',' are empty"),
    Case("users-zero", (*RUN, "--users", "0"), "user step '0'"),
    Case("duration-word", (*RUN, "--step-duration", "soon"), "--step-duration 'soon' is not"),
    Case("duration-zero", (*RUN, "--step-duration", "0s"), "--step-duration '0s' must be"),
    Case("window-negative", (*RUN, "--window", "-1"), "--window '-1' is not a duration"),
    Case("settle-too-long", (*RUN, "--step-duration", "4s", "--settle", "5s"), "settling period"),
    # --- SLO expressions
    Case("slo-operator", (*RUN, "--slo", "p95_ms<100"), "SLO 'p95_ms<100' is malformed"),
    Case("slo-metric", (*RUN, "--slo", "p97_ms=3"), "unknown metric 'p97_ms'"),
    Case("slo-negative", (*RUN, "--slo", "p95_ms=-3"), "finite number >= 0"),
    Case("slo-nan", (*RUN, "--slo", "p95_ms=nan"), "finite number >= 0"),
    Case("slo-endpoint-errors", (*RUN, "--slo", "a:error_pct=1"), "applies to the whole step"),
    Case("slo-value", (*RUN, "--slo", "p95_ms=fast"), "'fast' is not a number"),
    # --- target URLs
    Case("host-scheme", ("run", "--host", "ftp://127.0.0.1:21"), "use an http:// or https://"),
    Case("host-not-url", ("run", "--host", "hub"), "'hub': use an http:// or https:// URL"),
    Case("host-bad-port", ("run", "--host", "http://127.0.0.1:99999"), "is not a URL"),
    Case("host-unreachable", RUN_OK, "target unreachable (Connection refused"),
    # --- the lab's Prometheus (checked before the run: nothing written)
    Case(
        "prometheus-scheme",
        (*LIVE, LOCUSTFILE, *LIVE_TAIL, "--prometheus-url", "ftp://127.0.0.1:9090"),
        "--prometheus-url 'ftp://127.0.0.1:9090' is not an http(s) base URL",
    ),
    Case(
        "prometheus-unreachable",
        (*LIVE, LOCUSTFILE, *LIVE_TAIL, "--prometheus-url", "http://127.0.0.1:{port}"),
        "no answer (ConnectionError",
    ),
    Case(
        "prometheus-not-prometheus",
        (*LIVE, LOCUSTFILE, *LIVE_TAIL, "--prometheus-url", "{url}"),
        "not a Prometheus HTTP API",
    ),
    # --- kernel workloads
    Case(
        "kernel-workload-unknown",
        (*RUN_OK[:3], "--scenario", "jupyterhub", *RUN_OK[5:], "--kernel-workload", "fft"),
        "--kernel-workload 'fft': not a built-in (cpu, memory, gpu-matmul",
    ),
    Case(
        "kernel-workload-too-long",
        (*RUN_OK[:3], "--scenario", "jupyterhub", *RUN_OK[5:], "--kernel-workload", "cpu:9999"),
        "cpu takes s in (0, 300]",
    ),
    Case(
        "kernel-workload-no-kernels",
        (*RUN_OK[:3], "--scenario", "mlflow", *RUN_OK[5:], "--kernel-workload", "cpu"),
        "--kernel-workload needs --scenario jupyterhub or lab",
    ),
    Case(
        "out-holds-a-run",
        (*LIVE, LOCUSTFILE, "--users", "1", "--step-duration", "2s", "--out", "{run}"),
        "already holds a run: choose another --out or pass --overwrite",
    ),
    Case(
        "out-is-a-file",
        (*LIVE, LOCUSTFILE, "--out", "{dir}/f.txt"),
        "is a file",
        files={"f.txt": "x"},
    ),
    # --- locustfiles that fail to import (the target is up: the locustfile is the fault)
    Case(
        "locustfile-missing-module",
        (*LIVE, str(SUPPORT / "locustfile_broken.py"), *LIVE_TAIL),
        "ModuleNotFoundError: No module named 'this_module_does_not_exist'",
    ),
    Case(
        "locustfile-syntax",
        (*LIVE, "{dir}/bad.py", *LIVE_TAIL),
        "SyntaxError",
        files={"bad.py": "def (:\n"},
    ),
    Case(
        "locustfile-no-users",
        (*LIVE, "{dir}/empty.py", *LIVE_TAIL),
        "defines no Locust User class",
        files={"empty.py": "X = 1\n"},
    ),
    Case(
        "locustfile-raises",
        (*LIVE, "{dir}/raises.py", *LIVE_TAIL),
        "RuntimeError: no config",
        files={"raises.py": "raise RuntimeError('no config')\n"},
    ),
    # --- policy files
    Case("policy-missing", ("plan", "{run}", "--policy", "{dir}/no.yaml"), "no.yaml: no such"),
    Case("policy-yaml", POLICY, "not valid YAML at line 2", files={"policy.yaml": "a: [\n"}),
    Case("policy-not-mapping", POLICY, "a policy is a mapping", files={"policy.yaml": "- 1\n"}),
    Case("policy-unknown-key", POLICY, "unknown key 'frobs'", files={"policy.yaml": "frobs: 1"}),
    Case("policy-binary", POLICY, "policy.yaml: unreadable", files={"policy.yaml": b"\xff\xfe"}),
    Case("policy-bad-operator", POLICY, "'~'", files={"policy.yaml": BAD_OP}),
    Case(
        "policy-wrong-type",
        POLICY,
        "wide_band_pct",
        files={"policy.yaml": "schema_version: 1\nconfidence: {wide_band_pct: lots}\n"},
    ),
    Case("expected-users", ("plan", "{run}", "--expected-users", "-4"), "--expected-users '-4'"),
    Case(
        "growth",
        ("plan", "{run}", "--expected-users", "4", "--growth-per-month", "lots"),
        "--growth-per-month 'lots'",
    ),
    # --- profile options
    Case("profile-platform", ("profile", "{run}", "--platform", "swarm"), "'swarm' is not one of"),
    Case(
        "profile-users",
        (*PROFILE, "--expected-users", "many"),
        "--expected-users 'many' is not a positive whole number",
    ),
    Case("profile-mem", (*PROFILE, "--mem-per-user", "4GB"), "'4GB' is not a memory size"),
    Case("run-duration", (*RUN, "--step-duration", "30s1m"), "'30s1m' is not a duration"),
    Case("slo-unit", (*RUN, "--slo", "p95=500"), "give p95's unit, e.g. p95=500ms"),
    Case("profile-cpu", (*PROFILE, "--cpu-per-user", "0"), "--cpu-per-user"),
    Case(
        "profile-mig-model",
        ("profile", "{run}", "--platform", "k3s", "--out", "{dir}/p", "--gpus", "1")
        + ("--gpu-sharing", "mig"),
        "--gpu-sharing mig needs --gpu-model",
    ),
    Case("profile-out-file", (*PROFILE[:5], "{dir}/f.txt"), "is a file", files={"f.txt": "x"}),
    # --- run directories
    Case("rundir-missing", ("plan", "{dir}/nope"), "nope: no such run directory"),
    Case("rundir-not-run", ("report", "{dir}"), "not a labcap run (no manifest.json)"),
    Case("rundir-truncated", ("plan", "{run}"), "not valid JSON", edit=_truncate(MANIFEST, 40)),
    Case(
        "rundir-newer-schema",
        ("gate", "{run}", "{run}"),
        "written by a newer labcap (schema 3.1",
        edit=_manifest(lambda m: m.update(schema_version="3.1")),
    ),
    Case(
        "rundir-steps-edited",
        ("plan", "{run}"),
        "field 'load.steps' must be a list",
        edit=_manifest(lambda m: m["load"].update(steps="many")),
    ),
    Case(
        "rundir-step-key",
        ("report", "{run}"),
        "field 'load.steps[0]' must have exactly the keys",
        edit=_manifest(lambda m: m["load"]["steps"][0].update(bogus=1)),
    ),
    Case(
        "rundir-window-text",
        ("plan", "{run}"),
        "field 'load.window_s' must be a number",
        edit=_manifest(lambda m: m["load"].update(window_s="abc")),
    ),
    Case(
        "rundir-slos-type",
        ("plan", "{run}"),
        "field 'slos' must be a list",
        edit=_manifest(lambda m: m.update(slos=5)),
    ),
    Case(
        "rundir-scenario-type",
        ("plan", "{run}"),
        "field 'scenario' must be an object",
        edit=_manifest(lambda m: m.update(scenario="lab")),
    ),
    Case(
        "rundir-status",
        ("plan", "{run}"),
        "unknown status 'great'",
        edit=_manifest(lambda m: m.update(status="great")),
    ),
    Case(
        "rundir-negative-users",
        ("plan", "{run}"),
        "'load.steps[0].users' must be a positive whole number",
        edit=_manifest(lambda m: m["load"]["steps"][0].update(users=-1)),
    ),
    Case(
        "rundir-corrupt-parquet",
        ("report", "{run}"),
        "windows.parquet: unreadable Parquet",
        edit=_write("windows.parquet", b"PAR1 not really"),
    ),
    Case(
        "rundir-corrupt-parquet-gate",
        ("gate", "{run}", "{run}"),
        "windows.parquet: unreadable Parquet",
        edit=_write("windows.parquet", b"PAR1 not really"),
    ),
    Case(
        "rundir-damaged-journal",
        ("plan", "{run}"),
        "journal.jsonl: damaged record ('window_index' is not a number)",
        edit=_write("journal.jsonl", '{"kind": "window", "window_index": "x"}\n[1]\n'),
    ),
    # --- gate options
    Case("gate-limit", ("gate", "{run}", "{run}", "--max-regression", "p95=lots"), "'lots'"),
    Case("gate-alpha", ("gate", "{run}", "{run}", "--alpha", "2"), "--alpha '2' must lie"),
    Case("gate-one-unpaired-run", ("gate", "{run}"), "not a paired run"),
    Case("gate-history-too-short", ("gate", "{dir}", "{run}"), "at least 5 complete runs"),
    # --- paired runs
    Case(
        "run-paired-odd-users",
        ("run", "--host", "{url}", "--candidate-host", "http://127.0.0.1:{port}")
        + ("--scenario", "mlflow", "--users", "3", "--no-calibrate", "--out", "{dir}/out"),
        "even count",
        needs_option="--candidate-host",
    ),
    Case(
        "run-paired-mlflow-alone",
        ("run", "--host", "{url}", "--candidate-mlflow-url", "{url}")
        + ("--scenario", "mlflow", "--users", "2"),
        "--candidate-mlflow-url needs --candidate-host",
        needs_option="--candidate-mlflow-url",
    ),
    # --- kubeconfig (the k8s target is another engineer's; the rule holds for it too)
    Case(
        "kubeconfig-missing",
        ("run", "--target", "k8s", "--host", "http://127.0.0.1:{port}")
        + ("--kubeconfig", "{dir}/no-kubeconfig"),
        "no-kubeconfig",
        needs_option="--kubeconfig",
    ),
]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("good")
    return record_run(
        base / "run",
        {1: {"api.get": [10.0] * 40}, 2: {"api.get": [12.0] * 40}},
        slos=["p95_ms=100", "error_pct=1"],
    )


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


@pytest.fixture(scope="module")
def run_help():
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "run", "--help"], capture_output=True, text=True
    )
    return r.stdout


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def test_the_corpus_is_large_and_names_are_unique():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, tmp_path, good_run, run_help, target):
    if case.needs_option and case.needs_option not in run_help:
        pytest.skip(f"labcap run has no {case.needs_option} yet (the k8s target's option)")
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    if case.edit:
        case.edit(run)
    for name, data in case.files.items():
        (tmp_path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    subs = {"{run}": str(run), "{dir}": str(tmp_path), "{port}": str(_free_port()), "{url}": target}
    argv = []
    for a in case.argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    before = _snapshot(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    lines = r.stderr.splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr  # one line: no progress, no traceback, no usage block
    assert lines[0].startswith("labcap: error: ") and case.expect in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert _snapshot(tmp_path) == before  # nothing written, nothing half-written
