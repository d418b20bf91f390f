"""The result schema: what a run is, in frozen records, and how CLI text becomes them.

Everything here is plain Python (no Locust, no pandas) so the CLI, the load
engine subprocess and the planner share one definition of a step, a window
and an SLO.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from labcap.errors import LabcapError

# Major.minor: readers refuse an unknown major, accept any minor of a known one.
SCHEMA_VERSION = "1.0"
SCHEMA_MAJOR = 1

# invalid: finished, but the figures do not describe the target (labcap.validity)
RUN_STATUSES = ("running", "complete", "partial", "invalid", "failed")

# Latency metrics an SLO can bound, per endpoint, and the run-wide ones.
LATENCY_METRICS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
RUN_METRICS = ("error_pct",)

# The pseudo-endpoint that aggregates every endpoint of a step.
ALL_ENDPOINTS = "*"


@dataclass(frozen=True)
class Step:
    """One plateau of the step load: ``users`` held for ``duration_s``."""

    index: int
    users: int
    start_s: float
    duration_s: float
    settle_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Window:
    """A slice of one step; latencies are aggregated per endpoint per window."""

    index: int
    step_index: int
    start_s: float
    end_s: float
    settling: bool


@dataclass(frozen=True)
class Slo:
    """A service-level objective: ``metric`` must stay at or below ``threshold``.

    ``endpoint`` None means "every endpoint that has no SLO of its own" for
    latency metrics, and the whole step for ``error_pct``.
    """

    metric: str
    threshold: float
    endpoint: str | None = None

    @property
    def expression(self) -> str:
        prefix = f"{self.endpoint}:" if self.endpoint else ""
        return f"{prefix}{self.metric}={self.threshold:g}"


@dataclass(frozen=True)
class LoadPlan:
    """The schedule of a run: steps and the windows inside them."""

    steps: tuple[Step, ...]
    window_s: float
    spawn_rate: float
    windows: tuple[Window, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.steps[-1].end_s if self.steps else 0.0


def parse_duration(text: str, *, what: str = "duration") -> float:
    """'20s', '2m', '1h', '90' (seconds) or '1.5m' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
    if not m:
        raise LabcapError(f"{what} {text!r} is not a duration: use e.g. 20s, 2m or 90")
    value = float(m.group(1))
    unit = m.group(2) or "s"
    seconds = value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise LabcapError(f"{what} {text!r} must be greater than zero")
    return seconds


def parse_user_steps(text: str) -> tuple[int, ...]:
    """'5,10,20' -> (5, 10, 20); counts must be positive integers."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise LabcapError(f"user steps {text!r} are empty: use e.g. 5,10,20")
    users = []
    for p in parts:
        if not re.fullmatch(r"[0-9]+", p) or int(p) <= 0:  # isdigit() takes '²'; int() not
            raise LabcapError(f"user step {p!r} in {text!r} is not a positive whole number")
        users.append(int(p))
    return tuple(users)


_SLO_RE = re.compile(
    r"^(?:(?P<endpoint>[^:=\s][^:=]*?)\s*:\s*)?(?P<metric>[a-z0-9_]+)\s*=\s*(?P<value>\S+)$"
)


def parse_slo(text: str) -> Slo:
    """'p95_ms=500', 'hub.spawn_ready:p95_ms=15000', 'error_pct=1'."""
    m = _SLO_RE.match(str(text).strip())
    if not m:
        raise LabcapError(
            f"SLO {text!r} is malformed: use METRIC=VALUE or ENDPOINT:METRIC=VALUE, "
            "e.g. p95_ms=500 or hub.spawn_ready:p95_ms=15000"
        )
    metric, endpoint = m.group("metric"), m.group("endpoint")
    if metric not in LATENCY_METRICS + RUN_METRICS:
        valid = ", ".join(LATENCY_METRICS + RUN_METRICS)
        raise LabcapError(f"SLO {text!r}: unknown metric {metric!r}; valid metrics are {valid}")
    if endpoint and metric in RUN_METRICS:
        raise LabcapError(f"SLO {text!r}: {metric} applies to the whole step, not to one endpoint")
    try:
        value = float(m.group("value"))
    except ValueError:
        raise LabcapError(f"SLO {text!r}: {m.group('value')!r} is not a number") from None
    if value < 0 or value != value or value == float("inf"):
        raise LabcapError(f"SLO {text!r}: the threshold must be a finite number >= 0")
    return Slo(metric=metric, threshold=value, endpoint=endpoint)


def build_plan(
    users: tuple[int, ...],
    step_duration_s: float,
    *,
    settle_s: float,
    window_s: float,
    spawn_rate: float,
) -> LoadPlan:
    """Lay out steps back to back and cut each into windows.

    Window boundaries restart at each step and at the end of its settling
    period, so every window belongs to one step and is either wholly
    settling or wholly steady.
    """
    if settle_s >= step_duration_s:
        raise LabcapError(
            f"settling period {settle_s:g}s must be shorter than the step duration "
            f"{step_duration_s:g}s"
        )
    if window_s <= 0:
        raise LabcapError("window length must be greater than zero")
    steps, windows = [], []
    t = 0.0
    for i, n in enumerate(users):
        step = Step(index=i, users=n, start_s=t, duration_s=step_duration_s, settle_s=settle_s)
        steps.append(step)
        for start, end in _cut(step.start_s, step.start_s + settle_s, window_s):
            windows.append(Window(len(windows), i, start, end, settling=True))
        for start, end in _cut(step.start_s + settle_s, step.end_s, window_s):
            windows.append(Window(len(windows), i, start, end, settling=False))
        t = step.end_s
    return LoadPlan(tuple(steps), window_s, spawn_rate, tuple(windows))


def _cut(start: float, end: float, width: float) -> list[tuple[float, float]]:
    out = []
    t = start
    while t < end - 1e-9:
        out.append((round(t, 6), round(min(t + width, end), 6)))
        t += width
    return out


def plan_to_dict(plan: LoadPlan) -> dict[str, Any]:
    return {
        "window_s": plan.window_s,
        "spawn_rate": plan.spawn_rate,
        "steps": [asdict(s) for s in plan.steps],
    }


def plan_from_dict(data: dict[str, Any]) -> LoadPlan:
    """Rebuild a plan (and its windows) from the manifest's ``load`` section."""
    steps = [Step(**s) for s in data["steps"]]
    if not steps:
        return LoadPlan((), float(data["window_s"]), float(data["spawn_rate"]))
    return build_plan(
        tuple(s.users for s in steps),
        steps[0].duration_s,
        settle_s=steps[0].settle_s,
        window_s=float(data["window_s"]),
        spawn_rate=float(data["spawn_rate"]),
    )
