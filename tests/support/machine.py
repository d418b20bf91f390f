"""Real load runs on a shared machine: one rerun when the machine, not the feature, spoilt one.

A run's validity checks include three about the machine that ran the load rather than the
target or labcap: a wall-clock jump, send bursts (a stalled generator releases its users
together) and a saturated generator process. A CI virtual machine paused for a moment, or
another tenant's burst, can trip one of them in a single window, and the run is then,
rightly, ``partial``. A test that measures something else (a capacity, two workers'
merge) reruns such a run once, and says so in a warning (shown in pytest's summary) so the
machine's hiccup stays on record. Any other reason, or the same finding twice, fails.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

MACHINE_CHECKS = frozenset({"clock-jump", "lock-step", "generator"})


def machine_findings(manifest: dict[str, Any]) -> list[str] | None:
    """The messages of a partial run whose every finding is about the machine, else None."""
    if manifest.get("status") != "partial":
        return None
    findings = (manifest.get("validity") or {}).get("findings") or []
    reasons = manifest.get("status_reasons") or []
    machine = [f for f in findings if f.get("check") in MACHINE_CHECKS]
    if not machine or len(machine) != len(findings) or len(reasons) != len(machine):
        return None
    return [str(f.get("message")) for f in machine]


def run_once_more_if_the_machine_spoilt_it(run: Callable[[int], Path]) -> Path:
    """``run(attempt)`` writes a run directory and returns it; a second attempt only when the
    first one's only reasons to be partial are the machine's (see the module doc)."""
    out = run(1)
    manifest = json.loads((out / "manifest.json").read_text())
    spoilt = machine_findings(manifest)
    if spoilt is None:
        return out
    warnings.warn(
        f"the machine spoilt a load run ({'; '.join(spoilt)}): running it once more",
        stacklevel=2,
    )
    return run(2)
