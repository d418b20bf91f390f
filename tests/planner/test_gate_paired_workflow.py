"""The worked CI example docs/examples/labcap-paired-gate.yml: its two labcap steps run
here as the workflow runs them (bash, the step's own script), against loopback targets.

The steps that need GitHub or Docker (checkout, setup-python, Compose, artifact upload)
are not run; OLD_URL and NEW_URL point at two tests/support/service_server.py
processes instead, the new one really slower (``--add-pct 200``) in the second test, and
LABCAP_PAIRED_ARGS is a short run of the test locustfile, LABCAP_GATE_ARGS a margin it
resolves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.support.servers import loopback_server

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / "docs" / "examples" / "labcap-paired-gate.yml"
LOCUSTFILE = ROOT / "tests" / "support" / "locustfile_target.py"
STEPS = ("Paired run (old and new in the same windows)", "Gate the paired run")
SERVICE = ("--service-ms", "100")
ARGS = (
    f"--scenario {LOCUSTFILE} --users 8 --step-duration 11s --settle 1s --window 1s "
    "--spawn-rate 50 --no-calibrate"
)


def workflow_steps() -> list[str]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["paired-gate"]["steps"]
    by_name = {s.get("name"): s for s in steps}
    return [by_name[name]["run"] for name in STEPS]


def run_steps(tmp_path: Path, old: str, new: str) -> list[subprocess.CompletedProcess]:
    """The tested steps in order, as the runner would run them; stops at the first failure."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "labcap"  # the workflow's `pip install labcap`, here the source under test
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m labcap.cli "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "OLD_URL": old,
        "NEW_URL": new,
        "LABCAP_PAIRED_ARGS": ARGS,
        # a margin that ~10 s of load resolves (the workflow's 10 % needs longer runs)
        "LABCAP_GATE_ARGS": "--max-regression p95=25%",
        "LABCAP_TEST_PATH": "/work",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    results = []
    for script in workflow_steps():
        r = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
        results.append(r)
        if r.returncode:
            break
    return results


@pytest.fixture(scope="module")
def old():
    with loopback_server("service_server.py", *SERVICE) as url:
        yield url


def test_the_workflow_passes_the_same_version(old, tmp_path):
    with loopback_server("service_server.py", *SERVICE) as new:
        results = run_steps(tmp_path, old, new)
    assert [r.returncode for r in results] == [0, 0], results[-1].stderr + results[-1].stdout
    assert (tmp_path / "summary.md").read_text().startswith("PASS")
    assert (tmp_path / "work" / "reports" / "paired.html").is_file()
    root = ET.parse(tmp_path / "work" / "reports" / "labcap-gate.xml").getroot()
    assert not root.findall(".//failure")


def test_the_workflow_fails_a_slower_version_with_exit_1(old, tmp_path):
    with loopback_server("service_server.py", *SERVICE, "--add-pct", "200") as new:
        results = run_steps(tmp_path, old, new)
    assert [r.returncode for r in results] == [0, 1], results[-1].stderr + results[-1].stdout
    assert (tmp_path / "summary.md").read_text().startswith("REGRESSION")
    root = ET.parse(tmp_path / "work" / "reports" / "labcap-gate.xml").getroot()
    assert root.findall(".//failure")
