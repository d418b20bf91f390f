"""Golden files: the exact text and ``--json`` output of ``labcap plan``, ``labcap gate`` and
the calibration rendering, on the fixed runs of ``tests/golden/runs.py``.

An intended change of output: ``LABCAP_UPDATE_GOLDEN=1 pytest tests/golden``, then review
the diff of ``tests/golden/*.txt`` like code. What varies from machine to machine is
normalised explicitly (``normalise``, ``MEASURED``), never dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from labcap.measure.calibrate import describe
from tests.golden.runs import CALIBRATION, build
from tests.support.cli import labcap

HERE = Path(__file__).parent
UPDATE = os.environ.get("LABCAP_UPDATE_GOLDEN") == "1"
RUNS = "<RUNS>"  # the temporary directory the runs are written to

EXPECTED = ("--expected-users", "30", "--growth-per-month", "5%")
CASES = {
    "plan-limit": ("plan", "{limit}"),
    "plan-limit-expected": ("plan", "{limit}", *EXPECTED),
    "plan-limit-expected-json": ("plan", "{limit}", *EXPECTED, "--json"),
    "plan-partial": ("plan", "{partial}"),
    "plan-partial-json": ("plan", "{partial}", "--json"),
    "gate-pass": ("gate", "{base}", "{same}"),
    "gate-regression": ("gate", "{base}", "{slow}"),
    "gate-regression-json": ("gate", "{base}", "{slow}", "--json"),
    "gate-partial-json": ("gate", "{base}", "{partial}", "--json"),
}  # fmt: skip

# `labcap calibrate --json` fields that are measured on this machine: only their type is golden.
MEASURED = {
    *(f"{prefix}floor_{m}" for prefix in ("", "wire_") for m in ("requests", "mean_ms")),
    *(f"{prefix}floor_p{p}_ms" for prefix in ("", "wire_") for p in (50, 90, 95, 99)),
    "floor_max_ms",
    "wire_floor_max_ms",
    "ceiling_rps",
    "ceiling_cpu_pct",
    "ceiling_rps_per_core",
    "failed_requests",
    "duration_s",
    "cpu_count",
}


def normalise(value: Any, root: str) -> Any:
    """The temporary directory of the runs becomes ``<RUNS>``, in text and in every JSON string."""
    if isinstance(value, str):
        return value.replace(root, RUNS)
    if isinstance(value, list):
        return [normalise(v, root) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v, root) for k, v in value.items()}
    return value


def check_golden(name: str, actual: str) -> None:
    path = HERE / f"{name}.txt"
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no {path.name}: run with LABCAP_UPDATE_GOLDEN=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} differs (LABCAP_UPDATE_GOLDEN=1 rewrites it)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("golden-runs"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_output_matches_its_golden_file(name, runs):
    root = str(next(iter(runs.values())).parent)
    argv = [a.format(**{k: str(v) for k, v in runs.items()}) for a in CASES[name]]
    r = labcap(*argv)
    stdout = r.stdout
    if "--json" in argv:
        stdout = json.dumps(normalise(json.loads(r.stdout), root), indent=2, ensure_ascii=False)
        stdout += "\n"  # the JSON is all of stdout: it parses whole
    shown = " ".join(normalise(argv, root))
    check_golden(
        name,
        f"$ labcap {shown}\nexit {r.returncode}\n--- stdout\n{normalise(stdout, root)}"
        f"--- stderr\n{normalise(r.stderr, root)}",
    )


def test_calibration_rendering_matches_its_golden_file():
    older = {k: v for k, v in CALIBRATION.items() if not k.startswith("wire_")}
    check_golden("calibrate-describe", describe(CALIBRATION) + "\n")
    check_golden("calibrate-describe-without-wire-floor", describe(older) + "\n")


def test_calibrate_json_shape_matches_its_golden_file():
    r = labcap("calibrate", "--json")
    assert r.returncode == 0, r.stderr
    measured = json.loads(r.stdout)
    assert set(measured) == set(CALIBRATION), "calibration.json no longer has calibrate's fields"
    shape = {k: f"<{type(v).__name__}>" if k in MEASURED else v for k, v in measured.items()}
    check_golden("calibrate-json-shape", json.dumps(shape, indent=2, ensure_ascii=False) + "\n")
