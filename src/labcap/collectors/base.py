"""The one small protocol every collector follows, and the context a run hands it.

A collector samples one source (Docker engine, Kubernetes API, NVML, the
host) in its own thread while the load runs. It never blocks the load, and
a source that is absent makes it *unavailable* with a reason, not a crash.
Records carry wall-clock timestamps (``t_unix``); the runner maps them onto
the run's steps when it finalises the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from labcap.model import LoadPlan


@dataclass(frozen=True)
class RunContext:
    """What a collector may know about the run it observes."""

    run_dir: Path
    plan: LoadPlan
    progress: Any = None  # Callable[[str], None] | None


@dataclass(frozen=True)
class CollectorStatus:
    name: str
    available: bool
    reason: str = ""
    # problems seen while sampling (gaps, source restarts), shown in the report
    warnings: tuple[str, ...] = field(default=())


@runtime_checkable
class Collector(Protocol):
    name: str

    def start(self, ctx: RunContext) -> None:
        """Begin sampling in the background; return at once."""

    def stop(self) -> None:
        """Stop sampling and join the thread; idempotent."""

    def tables(self) -> dict[str, Any]:
        """Table name -> pandas DataFrame, each with a ``t_unix`` column (seconds)."""

    def status(self) -> CollectorStatus:
        """Whether the source was there, and what went wrong while sampling."""


@dataclass(frozen=True)
class StartupRecord:
    """One container's startup. Phase times are seconds after ``t_unix`` (its creation)."""

    container_id: str
    container: str
    image: str
    service: str
    project: str
    t_unix: float  # created (engine clock); first start when creation predates the run
    origin: str  # created | started: which event t_unix is
    requested_s: float  # the create call was sent (labcap clock; probes only)
    pulled_s: float  # the image pull finished (engine), when one happened
    created_s: float
    started_s: float  # State.StartedAt: the process started (engine)
    running_s: float  # the start event: the engine reports it running
    healthy_s: float  # first health_status: healthy event
    http_ready_s: float  # first HTTP answer < 400 on the labelled port (labcap clock)
    ready_s: float
    ready_via: str  # http | healthcheck | running
    exited_s: float
    clock_source: str  # engine | engine+labcap (http_ready is labcap's clock)
    outcome: str  # ready | exited | unhealthy | timeout | pull-failed
    exit_code: float
    oom_killed: bool
    restarts: int
    reason: str
