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
    return junit_document(
        "labcap gate",
        SUITE,
        cases,
        (
            ("baseline", result.baseline),
            ("current", result.current),
            ("outcome", result.outcome),
            ("exit_code", str(result.exit_code)),
            ("method", result.method),
        ),
        result.summary,
    )


def write_junit(result: GateResult, path: str | Path) -> Path:
    """Write the gate's JUnit XML atomically, creating the parent directory if needed."""
    return write_junit_bytes(junit_xml(result), path)


def junit_document(
    title: str,
    suite_name: str,
    cases: list[ET.Element],
    properties: tuple[tuple[str, str], ...],
    summary: str,
) -> bytes:
    """One test suite of ``cases`` as a JUnit XML document (UTF-8 bytes); the counts of
    failures, errors and skips are those of the cases' own elements."""
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(c.find("failure") is not None for c in cases)),
        "errors": str(sum(c.find("error") is not None for c in cases)),
    }
    skipped = str(sum(c.find("skipped") is not None for c in cases))
    root = ET.Element("testsuites", name=title, **counts, time="0")
    suite = ET.SubElement(root, "testsuite", name=suite_name, **counts, skipped=skipped, time="0")
    props = ET.SubElement(suite, "properties")
    for name, value in properties:
        ET.SubElement(props, "property", name=name, value=value)
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = summary
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit_bytes(data: bytes, path: str | Path) -> Path:
    """Write a JUnit document atomically, creating the parent directory if needed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
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
