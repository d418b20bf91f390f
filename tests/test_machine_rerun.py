"""The tests' one rerun of a load run the machine spoilt (tests/support/machine.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcap import validity
from tests.support.machine import (
    MACHINE_CHECKS,
    machine_findings,
    run_once_more_if_the_machine_spoilt_it,
)


def _manifest(status: str, *checks: str, extra_reason: str | None = None) -> dict:
    findings = [{"check": c, "severity": "partial", "message": f"{c} seen"} for c in checks]
    reasons = [f["message"] for f in findings] + ([extra_reason] if extra_reason else [])
    return {"status": status, "status_reasons": reasons, "validity": {"findings": findings}}


def test_the_machine_checks_are_validitys_own():
    # the three names are the checks validity.py records: a rename here would retry nothing
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
        (_manifest("partial", "lock-step"), ["lock-step seen"]),
        (_manifest("partial", "clock-jump", "generator"), ["clock-jump seen", "generator seen"]),
        (_manifest("partial", "lock-step", "timeouts"), None),  # the target's, too
        (_manifest("partial", "lock-step", extra_reason="interrupted: SIGINT"), None),
        (_manifest("partial"), None),
        (_manifest("invalid", "lock-step"), None),
    ],
)
def test_only_a_run_spoilt_by_the_machine_alone_is_rerun(manifest, expected):
    assert machine_findings(manifest) == expected


def test_one_rerun_and_a_warning_that_names_the_reason(tmp_path: Path):
    manifests = [_manifest("partial", "lock-step"), _manifest("partial", "lock-step")]
    attempts = []

    def run(attempt: int) -> Path:
        out = tmp_path / str(attempt)
        out.mkdir()
        (out / "manifest.json").write_text(json.dumps(manifests[attempt - 1]))
        attempts.append(attempt)
        return out

    with pytest.warns(UserWarning, match="lock-step seen"):
        out = run_once_more_if_the_machine_spoilt_it(run)
    assert attempts == [1, 2] and out == tmp_path / "2"  # never a third: the test judges it


def test_a_clean_or_otherwise_partial_run_is_not_rerun(tmp_path: Path):
    for i, m in enumerate((_manifest("complete"), _manifest("partial", "timeouts"))):
        out = tmp_path / str(i)
        out.mkdir()
        (out / "manifest.json").write_text(json.dumps(m))
        calls: list[int] = []
        rerun = run_once_more_if_the_machine_spoilt_it(lambda a, o=out, c=calls: c.append(a) or o)
        assert rerun == out and calls == [1]
