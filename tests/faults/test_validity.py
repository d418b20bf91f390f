"""Validity checks (labcap.validity): runs that are not a measurement of the target are
marked partial or invalid, on read as at finalise, and plan / report / gate say so.

The runs are journaled by the real WindowRecorder (tests/conftest.record_run);
the real-process faults that produce these conditions are in test_faults.py.
"""

from __future__ import annotations

import json

import pytest

from labcap.store import MANIFEST, RunDir
from labcap.validity import Bounds, assess, clock_stamp, worst
from tests.support.cli import labcap

OK = {"api.get": [10.0] * 30}


def _edit(run, **fields):
    m = json.loads((run / MANIFEST).read_text())
    m.update(fields)
    (run / MANIFEST).write_text(json.dumps(m))
    return run


def test_worst_status_only_gets_worse():
    assert worst("complete", "partial") == "partial"
    assert worst("partial", "invalid", "partial") == "invalid"
    assert worst("failed", "invalid") == "failed"


def test_target_failing_from_the_first_step_is_invalid_and_nobody_gives_a_verdict(
    tmp_path, recorded_run
):
    run = recorded_run(
        tmp_path / "run", {1: OK, 2: OK}, slos=["p95_ms=100"], failures={1: 60, 2: 60}
    )
    m = RunDir.open(run).manifest
    assert m["status"] == "invalid"
    assert "67 % of the first step's requests failed" in m["status_reasons"][0]
    plan = labcap("plan", run, "--json", "--expected-users", "2")
    assert plan.returncode == 0, plan.stderr
    out = json.loads(plan.stdout)
    assert out["status"] == "invalid" and "no confident verdict" in out["verdict"]
    assert out["recommendation"]["action"] == "insufficient-data"
    assert out["recommendation"]["confidence"]["level"] == "low"
    gate = labcap("gate", run, run)
    assert gate.returncode == 3, gate.stdout + gate.stderr  # inconclusive
    assert "is invalid" in gate.stdout
    rep = labcap("report", run, "-o", tmp_path / "r.html")
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "r.html").read_text()
    top = html[: html.index('id="summary"')]  # shown above everything else
    assert 'id="validity"' in top and "This run is invalid" in top and "first step" in top


def test_a_step_without_steady_windows_makes_a_complete_run_partial(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "run", {1: OK, 2: OK, 4: {}}, slos=["p95_ms=100"])
    m = RunDir.open(run).manifest
    assert m["status"] == "partial"
    assert m["status_reasons"] == [
        "2 of 3 planned steps have steady windows; missing: step 3 (4 users)"
    ]


@pytest.mark.parametrize(
    "fields,fragment",
    [
        (
            {
                "collectors": [
                    {"name": "docker", "available": True, "warnings": ["lost the engine at 3 s"]}
                ]
            },
            "collector docker: lost the engine at 3 s",
        ),
        (
            {
                "clock": {
                    "start": {"wall_unix": 1000.0, "monotonic_s": 50.0},
                    "end": {"wall_unix": 1130.0, "monotonic_s": 110.0},
                }
            },
            "wall clock jumped +70.0 s",
        ),
        (
            {"lockstep": {"flagged": True, "windows_flagged": 4, "windows_judged": 6}},
            "lock-step bursts in 4 of 6",
        ),
        (
            {"generator": {"per_worker": {"local": {"cpu_pct_mean": 97.5}}}},
            "load generator local was saturated (97.5 %",
        ),
    ],
)
def test_manifest_evidence_makes_the_run_partial(tmp_path, recorded_run, fields, fragment):
    run = _edit(recorded_run(tmp_path / "run", {1: OK, 2: OK}, slos=["p95_ms=100"]), **fields)
    m = RunDir.open(run).manifest
    assert m["status"] == "partial" and any(fragment in r for r in m["status_reasons"]), m
    gate = labcap("gate", run, run)
    assert gate.returncode == 3 and fragment in gate.stdout


def test_a_clean_run_stays_complete(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "run", {1: OK, 2: OK}, slos=["p95_ms=100"])
    m = RunDir.open(run).manifest
    assert m["status"] == "complete" and m["status_reasons"] == []


def test_finalise_records_the_verdict_and_a_hand_edit_cannot_clear_it(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "run", {1: OK, 2: OK}, slos=["p95_ms=100"], failures={1: 90})
    reader = RunDir.open(run)
    m = json.loads((run / MANIFEST).read_text())
    m["clock"] = {"start": clock_stamp()}
    assessed = assess(m, reader.windows(), reader.failures(), Bounds())
    assert assessed["status"] == "invalid" and assessed["validity"]["status"] == "invalid"
    assert assessed["clock"]["end"]["wall_unix"] >= assessed["clock"]["start"]["wall_unix"]
    # someone "fixes" the run by hand, and also empties the journal of its failures
    assessed.update(status="complete", status_reasons=[])
    (run / MANIFEST).write_text(json.dumps(assessed))
    (run / "journal.jsonl").write_text("")
    m = RunDir.open(run).manifest
    assert m["status"] == "invalid" and "first step" in m["status_reasons"][0]


def test_refused_connections_and_timeouts_are_named(tmp_path, recorded_run):
    import pandas as pd

    from labcap.validity import table_findings

    run = recorded_run(tmp_path / "run", {1: OK, 2: OK}, slos=["p95_ms=100"])
    reader = RunDir.open(run)
    failures = pd.DataFrame(
        [
            [3, 1, "api.get", "GET", "ConnectionError: [Errno 111] Connection refused", 7],
            [4, 1, "api.get", "GET", "ReadTimeout: Read timed out. (read timeout=1)", 2],
        ],
        columns=["window_index", "step_index", "endpoint", "method", "reason", "count"],
    )
    found = {f.check: f for f in table_findings(reader.manifest, reader.windows(), failures)}
    assert found["target-down"].message.endswith("7 requests in step 2 (2 users)")
    assert found["timeouts"].message.endswith("2 requests in step 2 (2 users)")
    assert {f.severity for f in found.values()} == {"partial"}


def test_a_startup_probes_failures_are_its_measurement_not_a_fault(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "run", {1: OK}, slos=["p95_ms=100"], failures={1: 60})
    _edit(run, probe={"run_id": "abc", "label": "labcap.probe=abc"})
    assert RunDir.open(run).manifest["status"] == "complete"
