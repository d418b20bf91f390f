"""Validity checks: is a finished run a measurement of the target, or of something else?

A run can end "complete" and still not measure the deployment: the target was
failing from the first step, a step produced no steady window, a collector lost
its source, the wall clock jumped, or the load generator (not the target) set
the latencies (saturated CPU, lock-step bursts). Each check yields a finding
with a severity; the run's status becomes the worst of its own and theirs:

- ``partial``: what was measured is real but incomplete or doubtful; the
  capacity is a lower bound at best.
- ``invalid``: the figures do not describe the deployment; no verdict.

Checks run when a run is finalised (``assess`` over the manifest and the window
table) and again when a run directory is read (``on_read``): a manifest from an
older labcap, a journal-only run, or one whose status was edited by hand is
held to the same rules. ``plan`` then recommends ``insufficient-data`` and
``gate`` answers inconclusive (exit 3) for anything that is not ``complete``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

VALIDITY_VERSION = 1
# worst last: a status only ever moves right
_ORDER = ("complete", "partial", "invalid", "failed")


@dataclass(frozen=True)
class Bounds:
    """Where a run stops being trustworthy."""

    # failed requests in the first step, %: above it the target was broken from the start
    max_first_step_error_pct: float = 50.0
    # wall clock minus monotonic clock over the run, s: more is a clock jump
    max_clock_skew_s: float = 2.0
    # a load-generator process busier than this on average, % of one core: saturated
    max_generator_cpu_mean_pct: float = 90.0


@dataclass(frozen=True)
class Finding:
    check: str  # error-rate | missing-steps | collector-gap | clock-jump | generator | lock-step
    severity: str  # partial | invalid
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def worst(*statuses: str) -> str:
    known = [s for s in statuses if s in _ORDER]
    return max(known, key=_ORDER.index) if known else statuses[0]


# ---------------------------------------------------------------- clocks


def clock_stamp() -> dict[str, float]:
    """Wall and monotonic time now; two stamps tell whether the wall clock jumped."""
    return {"wall_unix": time.time(), "monotonic_s": time.monotonic()}


def clock_skew_s(start: dict[str, Any] | None, end: dict[str, Any] | None) -> float | None:
    """How far the wall clock moved beyond (or short of) the monotonic clock, seconds."""
    try:
        wall = float(end["wall_unix"]) - float(start["wall_unix"])  # type: ignore[index]
        mono = float(end["monotonic_s"]) - float(start["monotonic_s"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
    return wall - mono


# ---------------------------------------------------------------- the checks


def manifest_findings(manifest: dict[str, Any], bounds: Bounds = Bounds()) -> list[Finding]:
    """Checks that need only the manifest (cheap: run on every read)."""
    out: list[Finding] = []
    for c in _list(manifest.get("collectors")):
        if isinstance(c, dict) and c.get("available"):
            for w in _list(c.get("warnings"))[:5]:
                out.append(Finding("collector-gap", "partial", f"collector {c.get('name')}: {w}"))
    clock = manifest.get("clock")
    if isinstance(clock, dict):
        skew = clock_skew_s(clock.get("start"), clock.get("end"))
        if skew is not None and abs(skew) > bounds.max_clock_skew_s:
            out.append(
                Finding(
                    "clock-jump",
                    "partial",
                    f"the wall clock jumped {skew:+.1f} s against the monotonic clock during "
                    "the run: collector samples may sit on the wrong steps",
                )
            )
    lockstep = manifest.get("lockstep")
    if isinstance(lockstep, dict) and lockstep.get("flagged"):
        out.append(
            Finding(
                "lock-step",
                "partial",
                f"the load generator sent in lock-step bursts in {lockstep.get('windows_flagged')}"
                f" of {lockstep.get('windows_judged')} steady windows: tail latencies may be "
                "the generator's, not the target's",
            )
        )
    generator = manifest.get("generator")
    per_worker = generator.get("per_worker") if isinstance(generator, dict) else None
    for name, w in sorted((per_worker or {}).items()) if isinstance(per_worker, dict) else ():
        mean = w.get("cpu_pct_mean") if isinstance(w, dict) else None
        if isinstance(mean, int | float) and mean > bounds.max_generator_cpu_mean_pct:
            out.append(
                Finding(
                    "generator",
                    "partial",
                    f"load generator {name} was saturated ({mean:g} % of a core on average, "
                    f"over {bounds.max_generator_cpu_mean_pct:g} %): latencies include its own "
                    "queueing; rerun with --workers",
                )
            )
    return out


# failure reasons that say the target was away, or that a latency is unknown (censored)
_DOWN = ("connection refused", "connectionrefused", "connection reset", "remotedisconnected")
_TIMEOUT = ("timed out", "timeout")


def table_findings(
    manifest: dict[str, Any], windows: Any, failures: Any = None, bounds: Bounds = Bounds()
) -> list[Finding]:
    """Checks over the tables: missing steps, a target failing from the start, a target
    that went away mid-run, requests whose latency is unknown because they timed out."""
    steps = [s for s in _list(manifest.get("load", {}).get("steps")) if isinstance(s, dict)]
    if not steps or windows is None:
        return []
    # a startup probe measures failures (exits, timeouts): they are its result, not a fault
    probe = isinstance(manifest.get("probe"), dict)
    out = [] if probe else _failure_findings(failures, steps)
    steady = windows[~windows["settling"].astype(bool)] if len(windows) else windows
    with_data = set(int(i) for i in steady["step_index"].unique()) if len(steady) else set()
    if manifest.get("status") == "complete":
        missing = [i for i in range(len(steps)) if i not in with_data]
        if missing:
            names = ", ".join(f"{i + 1} ({steps[i].get('users')} users)" for i in missing[:5])
            out.append(
                Finding(
                    "missing-steps",
                    "partial",
                    f"{len(with_data)} of {len(steps)} planned steps have steady windows; "
                    f"missing: step {names}",
                )
            )
    first = windows[windows["step_index"] == 0] if len(windows) else windows
    requests = int(first["requests"].sum()) if len(first) else 0
    failures = int(first["failures"].sum()) if len(first) else 0
    if not probe and requests and 100 * failures / requests > bounds.max_first_step_error_pct:
        pct = 100 * failures / requests
        out.append(
            Finding(
                "error-rate",
                "invalid",
                f"{pct:.0f} % of the first step's requests failed (bound "
                f"{bounds.max_first_step_error_pct:g} %): the target was failing before the "
                "load grew, so no step measures its capacity",
            )
        )
    return out


def _failure_findings(failures: Any, steps: list[dict[str, Any]]) -> list[Finding]:
    if failures is None or not len(failures):
        return []
    out = []
    reasons = failures["reason"].astype(str).str.lower()
    for check, needles, what in (
        (
            "target-down",
            _DOWN,
            "the target refused or dropped connections (it was down or restarting, not slow)",
        ),
        (
            "timeouts",
            _TIMEOUT,
            "requests timed out, so those steps' latencies beyond the timeout are unknown",
        ),
    ):
        hit = failures[reasons.map(lambda r, n=needles: any(x in r for x in n))]
        if len(hit):
            idx = sorted(int(i) for i in hit["step_index"].unique())
            names = ", ".join(
                f"{i + 1} ({steps[i].get('users')} users)" for i in idx[:5] if i < len(steps)
            )
            out.append(
                Finding(
                    check,
                    "partial",
                    f"{what}: {int(hit['count'].sum())} requests in step {names}",
                )
            )
    return out


def apply(manifest: dict[str, Any], findings: list[Finding]) -> dict[str, Any]:
    """The manifest with status worsened by the findings and their reasons added (once)."""
    reasons = [str(r) for r in _list(manifest.get("status_reasons"))]
    for f in findings:
        if f.message not in reasons:
            reasons.append(f.message)
    status = worst(manifest.get("status", "complete"), *(f.severity for f in findings))
    return dict(manifest, status=status, status_reasons=reasons)


def assess(
    manifest: dict[str, Any], windows: Any, failures: Any = None, bounds: Bounds = Bounds()
) -> dict[str, Any]:
    """At finalise: every check; the result is recorded in the manifest's ``validity``."""
    if "clock" in manifest and isinstance(manifest["clock"], dict):
        manifest = dict(manifest, clock=dict(manifest["clock"], end=clock_stamp()))
    findings = manifest_findings(manifest, bounds) + table_findings(
        manifest, windows, failures, bounds
    )
    out = apply(manifest, findings)
    out["validity"] = {
        "version": VALIDITY_VERSION,
        "status": worst("complete", *(f.severity for f in findings)),
        "findings": [f.to_dict() for f in findings],
        "bounds": asdict(bounds),
    }
    return out


def on_read(
    manifest: dict[str, Any], windows: Callable[[], Any], failures: Callable[[], Any]
) -> dict[str, Any]:
    """At read: the recorded verdict still holds (a hand-edited status cannot clear it),
    the manifest checks run again, and a run never assessed gets the table checks too."""
    if manifest.get("status") in ("failed", "running"):
        return manifest
    recorded = manifest.get("validity")
    findings = manifest_findings(manifest)
    if isinstance(recorded, dict):
        findings += [
            Finding(str(f.get("check")), str(f.get("severity")), str(f.get("message")))
            for f in _list(recorded.get("findings"))
            if isinstance(f, dict) and f.get("severity") in ("partial", "invalid")
        ]
    else:
        # a damaged window table is reported by its reader when it is read for use
        with contextlib.suppress(KeyError, ValueError, TypeError):
            findings += table_findings(manifest, windows(), failures())
    return apply(manifest, findings)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
