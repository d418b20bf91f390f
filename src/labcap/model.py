"""The result schema: what a run is, in frozen records, and how CLI text becomes them.

Everything here is plain Python (no Locust, no pandas) so the CLI, the load
engine subprocess and the planner share one definition of a step, a window,
an SLO (:mod:`labcap.slo`) and a run's manifest (:class:`Manifest`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from labcap.errors import LabcapError
from labcap.slo import Slo, slos_from_records

# Major.minor: readers refuse an unknown major, accept any minor of a known one, and bring
# an older major up to this one step by step (labcap.store.MIGRATIONS).
# 2.0: SLOs stored as records {endpoint, metric, threshold} (1.x: expression strings).
# 2.1: a paired run (``labcap run --candidate-host``) records ``sides`` in its manifest and a
#      ``side`` column in its windows and failures tables; a 2.0 run is a run of one side,
#      read as it always was (no migration: the new keys are optional).
SCHEMA_VERSION = "2.1"
SCHEMA_MAJOR = 2

# invalid: finished, but the figures do not describe the target (labcap.validity)
RUN_STATUSES = ("running", "complete", "partial", "invalid", "failed")

# The pseudo-endpoint that aggregates every endpoint of a step.
ALL_ENDPOINTS = "*"

# The two sides of a paired run (``labcap run --host A --candidate-host B``): A is the
# baseline (the deployment in service), B the candidate (the change under test).
BASELINE_SIDE, CANDIDATE_SIDE = "baseline", "candidate"
SIDES = (BASELINE_SIDE, CANDIDATE_SIDE)
# how the load engine tags a request's endpoint name with its side until the run is
# finalised (split into the ``side`` column): "candidate\x1fGET /x"
SIDE_SEP = "\x1f"


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
class LoadPlan:
    """The schedule of a run: steps and the windows inside them."""

    steps: tuple[Step, ...]
    window_s: float
    spawn_rate: float
    windows: tuple[Window, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.steps[-1].end_s if self.steps else 0.0


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


# Manifest keys that Manifest reads into fields of its own; every other key stays in
# ``Manifest.extra`` as written, so a newer minor's additions survive a read and a write.
_SECTIONS = (
    "target",
    "hosts",
    "environment",
    "calibration",
    "collectors",
    "lockstep",
    "generator",
    "search",
    "validity",
    "notes",
)


@dataclass(frozen=True)
class Manifest:
    """A run directory's ``manifest.json`` (current schema), as the readers use it.

    The sections whose inner shape is each collector's or checker's own (``calibration``,
    ``environment``, ``lockstep`` ...) stay plain dicts: read them, never change them.
    Build one with :meth:`from_dict` (from the stored form, migrated and checked by
    :mod:`labcap.store`); :meth:`to_dict` gives the stored form back, unknown keys included.
    """

    schema_version: str
    status: str
    scenario: dict[str, Any]
    load: dict[str, Any]
    slos: tuple[Slo, ...]
    status_reasons: tuple[str, ...] = ()
    target: str | None = None
    hosts: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    collectors: tuple[dict[str, Any], ...] = ()
    lockstep: dict[str, Any] | None = None
    generator: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    validity: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    # every other key, as written (tool, pid, clock, started_at, probe, a newer minor's ...)
    extra: dict[str, Any] = field(default_factory=dict)
    # the optional sections the stored form had, so to_dict writes back what it read
    present: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @cached_property
    def plan(self) -> LoadPlan:
        """The load plan (steps and windows) of the ``load`` section."""
        return plan_from_dict(self.load)

    @property
    def scenario_name(self) -> str:
        return str(self.scenario["name"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """The stored form (current schema, shape already checked) as a record."""
        data = copy.deepcopy(data)  # the record shares nothing with its source
        known = {"schema_version", "status", "scenario", "load", "slos", "status_reasons"}
        known.update(_SECTIONS)
        sections: dict[str, Any] = {k: data[k] for k in _SECTIONS if k in data}
        for key in ("collectors", "notes"):
            if key in sections:
                sections[key] = tuple(sections[key] or ())
        for key in ("hosts", "environment"):
            if key in sections:
                sections[key] = sections[key] or {}
        return cls(
            schema_version=str(data["schema_version"]),
            status=data["status"],
            scenario=data["scenario"],
            load=data["load"],
            slos=slos_from_records(data["slos"]),
            status_reasons=tuple(data.get("status_reasons") or ()),
            extra={k: v for k, v in data.items() if k not in known},
            present=frozenset(k for k in (*_SECTIONS, "status_reasons") if k in data),
            **sections,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored form: what :meth:`from_dict` read, with this record's values."""
        out: dict[str, Any] = copy.deepcopy(self.extra)
        out.update(
            schema_version=self.schema_version,
            status=self.status,
            scenario=copy.deepcopy(self.scenario),
            load=copy.deepcopy(self.load),
            slos=[s.to_dict() for s in self.slos],
        )
        if self.status_reasons or "status_reasons" in self.present:
            out["status_reasons"] = list(self.status_reasons)
        for key in _SECTIONS:
            value = getattr(self, key)
            if key in self.present or (value is not None and value != () and value != {}):
                out[key] = copy.deepcopy(list(value) if isinstance(value, tuple) else value)
        return out
