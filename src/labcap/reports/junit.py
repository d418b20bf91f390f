"""JUnit XML for the gate, the format CI systems render as test results.

One testcase per step × endpoint × metric (classname ``labcap.gate.step2_10users``,
name ``hub.login p95``), plus ``labcap.gate.runs`` / ``runs complete and
comparable``. A regression is a ``<failure>``; an inconclusive comparison is an
``<error>``, so a CI that fails on errors fails closed, as the exit code does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from labcap.errors import LabcapError
from labcap.planner.gate import INCONCLUSIVE, REGRESSION, Comparison, GateResult
from labcap.store import atomic_write_bytes

SUITE = "labcap.gate"
RUNS_CASE = ("labcap.gate.runs", "runs complete and comparable")


def junit_xml(result: GateResult) -> bytes:
    """The gate result as a JUnit XML document (UTF-8 bytes)."""
    cases = [_runs_case(result)] + [_item_case(c) for c in result.comparisons]
    failures = sum(c.find("failure") is not None for c in cases)
    errors = sum(c.find("error") is not None for c in cases)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors)}
    root = ET.Element("testsuites", name="labcap gate", **counts, time="0")
    suite = ET.SubElement(root, "testsuite", name=SUITE, **counts, skipped="0", time="0")
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", result.baseline),
        ("current", result.current),
        ("outcome", result.outcome),
        ("exit_code", str(result.exit_code)),
        ("method", result.method),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = result.summary
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(result: GateResult, path: str | Path) -> Path:
    """Write the JUnit XML atomically, creating the parent directory if needed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, junit_xml(result))
    except OSError as e:
        raise LabcapError(f"{path}: cannot write the JUnit file ({e.strerror or e})") from None
    return path


def _runs_case(result: GateResult) -> ET.Element:
    case = ET.Element("testcase", classname=RUNS_CASE[0], name=RUNS_CASE[1], time="0")
    if result.reasons:
        text = "; ".join(result.reasons)
        ET.SubElement(case, "error", message=text, type=INCONCLUSIVE).text = text
    return case


def _item_case(c: Comparison) -> ET.Element:
    case = ET.Element(
        "testcase", classname=f"{SUITE}.{c.step_label}", name=f"{c.endpoint} {c.metric}", time="0"
    )
    if c.outcome == REGRESSION:
        ET.SubElement(case, "failure", message=c.reason, type=REGRESSION).text = c.reason
    elif c.outcome == INCONCLUSIVE:
        ET.SubElement(case, "error", message=c.reason, type=INCONCLUSIVE).text = c.reason
    else:
        ET.SubElement(case, "system-out").text = c.reason
    return case
