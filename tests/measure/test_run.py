"""`labcap run` end to end: a real Locust run against a real loopback HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cli import labcap
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parents[1] / "support"
LOCUSTFILE = SUPPORT / "locustfile_target.py"


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


def test_run_writes_a_complete_run_directory(tmp_path, target):
    out = tmp_path / "run"
    r = labcap(
        "run",
        "--host",
        target,
        "--scenario",
        str(LOCUSTFILE),
        "--users",
        "1,3",
        "--step-duration",
        "4s",
        "--settle",
        "1s",
        "--window",
        "1s",
        "--no-calibrate",
        "--out",
        str(out),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)  # stdout is JSON only; progress went to stderr
    assert "step 2/2" in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["schema_version"].startswith("2.")
    assert [s["users"] for s in manifest["load"]["steps"]] == [1, 3]
    assert (
        manifest["environment"]["cpu_count"] >= 1
        and "locust" in manifest["environment"]["packages"]
    )
    assert not (out / "journal.jsonl").exists()  # folded into Parquet
    windows = pd.read_parquet(out / "windows.parquet")
    assert set(windows["endpoint"]) == {"target.get"}
    assert sorted(windows["target_users"].unique()) == [1, 3]
    steady = windows[~windows["settling"]]
    assert steady.groupby("step_index")["active_users"].max().tolist() == [1, 3]
    for step in plan["steps"]:
        assert step["requests"] > 0 and step["failures"] == 0 and step["verdict"] == "pass"
    for e in plan["endpoints"]:
        assert 0 < e["p50_ms"] <= e["p90_ms"] <= e["p95_ms"] <= e["p99_ms"] <= e["max_ms"]
    # more users, more throughput, against a target that is nowhere near its limit
    rps = [s["rps"] for s in plan["steps"]]
    assert rps[1] > rps[0]
    assert plan["capacity"]["max_users_at_slo"] == 3 and plan["capacity"]["limit_reached"] is False
    # step statistics were cached at finalise time, and equal a fresh merge of the windows
    from labcap.model import plan_from_dict
    from labcap.planner.capacity import cached_step_statistics, step_statistics
    from labcap.store import RunDir

    run = RunDir.open(out)
    cached = cached_step_statistics(run)
    assert cached and cached == step_statistics(run.windows(), plan_from_dict(manifest["load"]))
    # the host collector sampled alongside the load, and its samples sit on the plan's steps
    host = pd.read_parquet(out / "host_samples.parquet")
    assert len(host) >= 5 and set(host["step_index"]) >= {0, 1}
    assert ((host["cpu_pct"] >= 0) & (host["cpu_pct"] <= 100)).all()
    assert manifest["collectors"] == [
        {"name": "host", "available": True, "reason": "", "warnings": []}
    ]

    rep = labcap("report", str(out), "-o", str(tmp_path / "r.html"))
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "r.html").read_text()
    assert "<script src=" not in html and "Plotly.newPlot" in html  # self-contained
    assert "target.get" in html and "users at SLO" in html and "Host resources" in html


def test_capacity_knee_is_found(tmp_path):
    # One worker with a 100 ms service time: alone a user waits ~100 ms; ten users with
    # ~50 ms think time queue for it, ~0.95 s each (R = N*S/k - Z). The SLO breaks between.
    out = tmp_path / "run"
    with loopback_server("queue_server.py", "1", "100") as url:
        r = labcap(
            "run",
            "--host",
            url,
            "--scenario",
            str(LOCUSTFILE),
            "--users",
            "1,10",
            "--step-duration",
            "5s",
            "--settle",
            "1s",
            "--window",
            "1s",
            "--spawn-rate",
            "20",
            "--slo",
            "p95_ms=300",
            "--slo",
            "error_pct=1",
            "--no-calibrate",
            "--out",
            str(out),
            "--json",
        )
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert [s["verdict"] for s in plan["steps"]] == ["pass", "fail"]
    cap = plan["capacity"]
    assert cap["max_users_at_slo"] == 1 and cap["band"] == [1, 10] and cap["limit_reached"]
    assert cap["binding"][0]["endpoint"] == "target.get" and cap["binding"][0]["measured"] >= 300


def test_labcap_imports_and_helps_without_locust():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import labcap.cli, labcap.planner.capacity, labcap.reports.html, labcap.measure.run\n"
        "r = CliRunner().invoke(labcap.cli.cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "for cmd in ('run', 'plan', 'report', 'demo', 'lab'):\n"
        "    assert CliRunner().invoke(labcap.cli.cli, [cmd, '--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_existing_run_is_not_overwritten_by_accident(tmp_path, target):
    out = tmp_path / "run"
    args = [
        "run",
        "--host",
        target,
        "--scenario",
        str(LOCUSTFILE),
        "--users",
        "1",
        "--step-duration",
        "2s",
        "--settle",
        "1s",
        "--window",
        "1s",
        "--no-calibrate",
        "--out",
        str(out),
    ]
    assert labcap(*args).returncode == 0
    before = (out / "manifest.json").read_text()
    again = labcap(*args)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert (out / "manifest.json").read_text() == before


class _SourceLostCollector:
    """A collector whose source went away mid-run (as the Docker one reports a lost engine)."""

    name = "flaky"

    def start(self, ctx):
        pass

    def stop(self):
        pass

    def tables(self):
        return {}

    def status(self):
        from labcap.collectors.base import CollectorStatus

        return CollectorStatus(self.name, True, "", ("lost its source 1.2 s into the run",))


def test_a_collector_gap_makes_the_run_partial(tmp_path, target):
    from labcap.measure.run import RunRequest, execute_run
    from labcap.model import build_plan
    from labcap.slo import parse_slo

    plan = build_plan((1,), 2, settle_s=0.5, window_s=1, spawn_rate=5)
    req = RunRequest(
        out=tmp_path / "run",
        scenario=str(LOCUSTFILE),
        hosts={"default": target},
        plan=plan,
        slos=(parse_slo("p95_ms=500"),),
        collectors=(_SourceLostCollector(),),
    )
    result = execute_run(req, lambda _msg: None)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert result.status == manifest["status"] == "partial"
    assert manifest["status_reasons"] == ["collector flaky: lost its source 1.2 s into the run"]
