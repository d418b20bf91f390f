"""The manifest's schema: SLOs stored as records (2.0), older run directories migrated on read,
the typed Manifest, and a run directory of schema 1.0 kept as a fixture that must still read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labcap.errors import LabcapError
from labcap.model import SCHEMA_VERSION, Manifest
from labcap.slo import Slo, parse_slo
from labcap.store import MANIFEST, RunDir
from tests.conftest import record_run

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_1 = ROOT / "tests" / "fixtures" / "old_schemas" / "schema-1"
SCHEMA_1_RUN = SCHEMA_1 / "run"


def labcap(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # from the repository root (or a copy of its layout), with the fixture's relative path:
    # the output names it as given
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "labcap.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


# --- the schema-1.0 run directory, written by the labcap before SLO records ----------------


@pytest.mark.parametrize(
    "args, expected, code",
    [
        (("plan", "{run}", "--json"), "plan.json", 0),
        (("plan", "{run}"), "plan.txt", 0),
        (("plan", "{run}", "--expected-users", "5", "--json"), "plan-expected-5.json", 0),
        (("gate", "{run}", "{run}", "--min-windows", "3", "--json"), "gate.json", 3),
        (("gate", "{run}", "{run}", "--min-windows", "3"), "gate.txt", 3),
    ],
)
def test_schema_1_run_reads_as_the_old_labcap_read_it(args, expected, code, tmp_path):
    # a copy at the same relative path: `plan --expected-users` writes plan.json beside the
    # run, and the checked-in fixture stays as it is
    run = str(SCHEMA_1_RUN.relative_to(ROOT))
    shutil.copytree(SCHEMA_1_RUN, tmp_path / run)
    r = labcap(*(a.format(run=run) for a in args), cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert r.stdout == (SCHEMA_1 / expected).read_text(encoding="utf-8")


def test_schema_1_run_is_migrated_in_memory_never_rewritten():
    before = {p.name: p.read_bytes() for p in SCHEMA_1_RUN.iterdir()}
    run = RunDir.open(SCHEMA_1_RUN)
    m = run.read_manifest()
    assert json.loads(before[MANIFEST])["schema_version"] == "1.0"
    assert m.schema_version == "2.0" and SCHEMA_VERSION == "2.1"  # a 1.x run has no sides
    assert m.slos == (
        parse_slo("p95_ms=300"),
        parse_slo("target.get:p99_ms=400"),
        parse_slo("error_pct=1"),
    )
    assert m.slos[1] == Slo("p99_ms", 400.0, "target.get")
    assert [s.users for s in m.plan.steps] == [1, 10] and m.plan.window_s == 1.0
    assert m.status == "complete" and m.target == "remote" and m.calibration["floor_p95_ms"]
    assert m.extra["tool"] == {"name": "labcap", "version": "0.1.0"}  # kept as written
    assert run.manifest["slos"][0] == {"endpoint": None, "metric": "p95_ms", "threshold": 300.0}
    assert {p.name: p.read_bytes() for p in SCHEMA_1_RUN.iterdir()} == before


# --- migration and refusal ------------------------------------------------------------------


def _recorded(tmp_path: Path, slos: list) -> Path:
    return record_run(tmp_path / "run", {1: {"api.get": [10.0] * 8}}, slos=slos)


def _edit(run: Path, **changes) -> None:
    m = json.loads((run / MANIFEST).read_text())
    (run / MANIFEST).write_text(json.dumps({**m, **changes}))


def test_a_1x_manifest_with_a_bad_slo_is_named(tmp_path):
    run = _recorded(tmp_path, ["p95_ms=fast"])
    with pytest.raises(LabcapError, match="field 'slos' holds a bad SLO: SLO 'p95_ms=fast'"):
        RunDir.open(run)
    _edit(run, slos=[{"endpoint": None, "metric": "p95_ms", "threshold": 5}])
    with pytest.raises(LabcapError, match="must be a list of SLO expressions"):
        RunDir.open(run)  # 1.x stored text: a record there is damage, not a newer form


def test_a_2x_manifest_holds_records_and_nothing_else(tmp_path):
    run = _recorded(tmp_path, [])
    good = {"endpoint": "api.get", "metric": "p99_ms", "threshold": 250.0}
    _edit(run, schema_version="2.3", slos=[good])
    assert RunDir.open(run).read_manifest().slos == (Slo("p99_ms", 250.0, "api.get"),)
    for bad, why in [
        ("p95_ms=500", "needs exactly the keys"),
        ({**good, "unit": "ms"}, "needs exactly the keys"),
        ({**good, "metric": "p96_ms"}, "unknown metric 'p96_ms'"),
        ({**good, "metric": "error_pct"}, "applies to the whole step"),
        ({**good, "threshold": -1}, "finite number >= 0"),
        ({**good, "threshold": True}, "threshold must be a number"),
        ({**good, "threshold": "250"}, "threshold must be a number"),
        ({**good, "endpoint": ""}, "endpoint must be null or a name"),
    ]:
        _edit(run, slos=[bad])
        with pytest.raises(LabcapError, match=f"field 'slos' holds a bad SLO: .*{why}"):
            RunDir.open(run)
    _edit(run, slos={"p95_ms": 500})
    with pytest.raises(LabcapError, match="field 'slos' must be a list of SLO records"):
        RunDir.open(run)


def test_a_newer_major_is_refused_before_anything_is_migrated(tmp_path):
    run = _recorded(tmp_path, ["p95_ms=500"])
    _edit(run, schema_version="3.0", slos="whatever a later labcap stores")
    with pytest.raises(LabcapError, match=r"newer labcap \(schema 3.0, this one reads 2.x\)"):
        RunDir.open(run)


# --- writers ---------------------------------------------------------------------------------


def test_writers_store_slos_as_records_whatever_they_hand_in(tmp_path):
    run = RunDir(tmp_path)
    base = json.loads((_recorded(tmp_path, []) / MANIFEST).read_text())
    slos = [
        Slo("p95_ms", 500.0),
        "hub.spawn_ready : p95_ms = 15000",
        {**Slo("error_pct", 1).to_dict()},
    ]
    run.write_manifest({**base, "schema_version": SCHEMA_VERSION, "slos": slos})
    stored = json.loads((tmp_path / MANIFEST).read_text())
    assert stored["slos"] == [
        {"endpoint": None, "metric": "p95_ms", "threshold": 500.0},
        {"endpoint": "hub.spawn_ready", "metric": "p95_ms", "threshold": 15000.0},
        {"endpoint": None, "metric": "error_pct", "threshold": 1.0},
    ]
    # an older run amended and written back (the search's rewrite) is written in today's form
    run.write_manifest({**base, "slos": ["p95_ms=500"]})
    stored = json.loads((tmp_path / MANIFEST).read_text())
    assert stored["schema_version"] == "2.0" and stored["slos"][0]["metric"] == "p95_ms"
    assert RunDir.open(tmp_path).read_manifest().slos == (Slo("p95_ms", 500.0),)


# --- the typed record ------------------------------------------------------------------------


def test_manifest_round_trips_unknown_keys_and_absent_sections(tmp_path):
    run = _recorded(tmp_path, ["p95_ms=500", "error_pct=1"])
    _edit(run, future_section={"from": "a newer minor", "n": [1, 2]}, lockstep=None)
    stored = RunDir.open(run).manifest
    m = Manifest.from_dict(stored)
    assert m.extra["future_section"] == {"from": "a newer minor", "n": [1, 2]}
    assert m.to_dict() == stored  # nothing lost, nothing added (no calibration appears)
    assert "calibration" not in m.to_dict() and m.to_dict()["lockstep"] is None
    assert Manifest.from_dict(m.to_dict()) == m
    RunDir(run).write_manifest(m)
    assert RunDir.open(run).read_manifest() == m
    with pytest.raises(AttributeError):
        m.status = "complete"  # frozen


def test_manifest_owns_its_sections(tmp_path):
    stored = RunDir.open(_recorded(tmp_path, ["p95_ms=500"])).manifest
    m = Manifest.from_dict(stored)
    stored["scenario"]["name"] = "changed after the read"
    m.to_dict()["scenario"]["name"] = "changed in a copy"
    assert m.scenario_name == "synthetic"


def test_compare_warns_on_other_slos_from_the_records(tmp_path):
    from labcap.reports.compare import comparability_warnings, write_comparison

    other = _recorded(tmp_path, ["error_pct=1", "p95_ms=300"])
    _edit(other, scenario={"name": "locustfile_target.py"})
    same = _recorded(tmp_path / "b", ["target.get:p99_ms=400", "error_pct=1", "p95_ms=300"])
    fixture = RunDir.open(SCHEMA_1_RUN).read_manifest()
    read = [RunDir.open(p).read_manifest() for p in (other, same)]
    assert comparability_warnings([fixture, read[0]]) == [
        "run 2 stepped through [1] users, run 1 through [1, 10]",
        "run 2 was judged on other SLOs (error_pct=1, p95_ms=300)",
    ]
    assert not any("SLOs" in w for w in comparability_warnings([fixture, read[1]]))
    html = write_comparison([SCHEMA_1_RUN, other], tmp_path / "c.html").read_text()
    assert "judged on other SLOs (error_pct=1, p95_ms=300)" in html
