"""The tests' one rerun of a load run that came out partial (tests/support/machine.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcap import validity
from tests.support.machine import MACHINE_CHECKS, partial_reasons, run_once_more_if_partial


def _manifest(status: str, *checks: str, extra_reason: str | None = None) -> dict:
    findings = [{"check": c, "severity": "partial", "message": f"{c} seen"} for c in checks]
    reasons = [f["message"] for f in findings] + ([extra_reason] if extra_reason else [])
    return {"status": status, "status_reasons": reasons, "validity": {"findings": findings}}


def test_the_machine_checks_are_validitys_own():
    # the three names are the checks validity.py records: a rename would mark nothing
    m = {
        "clock": {
            "start": {"wall_unix": 0.0, "monotonic_s": 0.0},
            "end": {"wall_unix": 10.0, "monotonic_s": 1.0},
        },
        "lockstep": {"flagged": True, "windows_flagged": 1, "windows_judged": 4},
        "generator": {"per_worker": {"local": {"cpu_pct_mean": 99.0}}},
    }
    assert {f.check for f in validity.manifest_findings(m)} == MACHINE_CHECKS


@pytest.mark.parametrize(
    "manifest,expected",
    [
        (_manifest("complete"), None),
        (_manifest("invalid", "lock-step"), None),
        (_manifest("partial", "lock-step"), ["lock-step seen [the machine's]"]),
        (
            _manifest("partial", "timeouts", extra_reason="interrupted: SIGINT"),
            ["timeouts seen", "interrupted: SIGINT"],
        ),
        (_manifest("partial"), []),
    ],
)
def test_a_partial_runs_reasons_with_the_machines_marked(manifest, expected):
    assert partial_reasons(manifest) == expected


def _runs(tmp_path: Path, *manifests: dict):
    attempts: list[int] = []

    def run(attempt: int) -> Path:
        out = tmp_path / str(attempt)
        out.mkdir()
        (out / "manifest.json").write_text(json.dumps(manifests[attempt - 1]))
        attempts.append(attempt)
        return out

    return run, attempts


def test_one_rerun_and_a_warning_that_names_the_reason(tmp_path: Path):
    run, attempts = _runs(tmp_path, _manifest("partial", "lock-step"), _manifest("partial"))
    with pytest.warns(UserWarning, match=r"lock-step seen \[the machine's\]"):
        out = run_once_more_if_partial(run)
    assert attempts == [1, 2] and out == tmp_path / "2"  # never a third: the test judges it


@pytest.mark.parametrize("status", ["complete", "invalid", "failed"])
def test_a_run_that_is_not_partial_is_not_rerun(tmp_path: Path, status):
    run, attempts = _runs(tmp_path, _manifest(status))
    assert run_once_more_if_partial(run) == tmp_path / "1" and attempts == [1]
