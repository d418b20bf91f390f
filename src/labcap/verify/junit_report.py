"""JUnit XML of a verify result, in the gate's conventions: a failed check is a
``<failure>``, a check that could not be made an ``<error>`` (so CI fails closed), a check
that does not apply ``<skipped>`` with its reason. One testcase per check, every difference
listed in its text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from labcap.reports.junit import junit_document, write_junit_bytes
from labcap.verify.records import FAIL, INCONCLUSIVE, SKIPPED, VerifyResult

SUITE = "labcap.verify"


def junit_xml(result: VerifyResult) -> bytes:
    cases = []
    for c in result.checks:
        case = ET.Element(
            "testcase", classname=f"{SUITE}.{c.name}", name=c.name, time=f"{c.elapsed_s:.2f}"
        )
        body = "\n".join([c.summary, *(d.line() for d in c.differences)])
        if c.status == FAIL:
            ET.SubElement(case, "failure", message=c.summary, type=FAIL).text = body
        elif c.status == INCONCLUSIVE:
            ET.SubElement(case, "error", message=c.summary, type=INCONCLUSIVE).text = body
        elif c.status == SKIPPED:
            ET.SubElement(case, "skipped", message=c.summary)
        else:
            ET.SubElement(case, "system-out").text = body
        cases.append(case)
    return junit_document(
        "labcap verify",
        SUITE,
        cases,
        (
            ("verdict", result.verdict),
            ("exit_code", str(result.exit_code)),
            ("old", result.old.get("source", "")),
            ("new", result.new.get("source", "")),
        ),
        result.summary,
    )


def write_junit(result: VerifyResult, path: str | Path) -> Path:
    return write_junit_bytes(junit_xml(result), path)
