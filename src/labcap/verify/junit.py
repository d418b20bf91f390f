"""JUnit XML of a verify result, in the gate's conventions: a failed check is a
``<failure>``, a check that could not be made an ``<error>`` (so CI fails closed), a check
that does not apply ``<skipped>`` with its reason. One testcase per check, every difference
listed in its text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from labcap.errors import LabcapError
from labcap.store import atomic_write_bytes
from labcap.verify.model import FAIL, INCONCLUSIVE, SKIPPED, VerifyResult

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
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(c.status == FAIL for c in result.checks)),
        "errors": str(sum(c.status == INCONCLUSIVE for c in result.checks)),
    }
    skipped = str(sum(c.status == SKIPPED for c in result.checks))
    root = ET.Element("testsuites", name="labcap verify", **counts, time="0")
    suite = ET.SubElement(root, "testsuite", name=SUITE, **counts, skipped=skipped, time="0")
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", result.verdict),
        ("exit_code", str(result.exit_code)),
        ("old", result.old.get("source", "")),
        ("new", result.new.get("source", "")),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = result.summary
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(result: VerifyResult, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, junit_xml(result))
    except OSError as e:
        raise LabcapError(f"{path}: cannot write the JUnit file ({e.strerror or e})") from None
    return path
