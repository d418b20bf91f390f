"""JSON Schemas of labcap's ``--json`` outputs: one shape per concept, reused by every command
that prints it (a run's plan and its run summary, a gate result, a verify result ...).
The tests validate every ``--json`` output they see against these (tests/support/schemas.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

# command path -> the schema its --json output follows
SCHEMA_OF_COMMAND = {
    ("run",): "plan",
    ("demo",): "plan",
    ("plan",): "plan",
    ("gate",): "gate",
    ("verify",): "verify",
    ("probe", "startup"): "startup",
    ("profile",): "profile",
    ("calibrate",): "calibration",
    ("cleanup",): "cleanup",
    ("lab", "up"): "lab-endpoints",
    ("lab", "status"): "lab-status",
}


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (``plan``, ``gate`` ...) as a dict."""
    return json.loads((HERE / f"{name}.schema.json").read_text(encoding="utf-8"))
