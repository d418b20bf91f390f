"""Real load runs on a shared machine: one rerun of a run that came out ``partial``.

A run is ``partial`` when something kept it from being a complete measurement, and several
of those causes belong to the machine that ran it rather than to labcap or the target: a
wall-clock jump, send bursts (a stalled generator releases its users together), a saturated
generator, a Locust worker's window arriving late. A CI virtual machine paused for a moment
trips one of them in a single window. A test that measures something else (a capacity, two
workers' merge) reruns such a run once and says why in a warning (pytest's summary shows
it, so the hiccup stays on record). A second partial run fails the test: a cause that
persists is the code's, and a rerun never hides it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# validity's checks about the machine rather than the target (named in the warning)
MACHINE_CHECKS = frozenset({"clock-jump", "lock-step", "generator"})


def partial_reasons(manifest: dict[str, Any]) -> list[str] | None:
    """A partial run's reasons, the machine's checks marked; None for any other status."""
    if manifest.get("status") != "partial":
        return None
    findings = (manifest.get("validity") or {}).get("findings") or []
    machine = {str(f.get("message")) for f in findings if f.get("check") in MACHINE_CHECKS}
    return [
        f"{r} [the machine's]" if r in machine else str(r)
        for r in manifest.get("status_reasons") or []
    ]


def run_once_more_if_partial(run: Callable[[int], Path]) -> Path:
    """``run(attempt)`` writes a run directory and returns it; a second attempt only when the
    first one came out partial (see the module doc). The caller judges what it returns."""
    out = run(1)
    reasons = partial_reasons(json.loads((out / "manifest.json").read_text()))
    if reasons is None:
        return out
    warnings.warn(
        f"a load run came out partial ({'; '.join(reasons) or 'no reason given'}): "
        "running it once more",
        stacklevel=2,
    )
    return run(2)
