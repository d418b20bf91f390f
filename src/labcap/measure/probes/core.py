"""The startup probe's core: spawn storms, their bookkeeping, and the run directory.

A probe measures how long containers (or pods) take to start when N start at
once. Each concurrency level is one *step*; within it, ``repeat`` rounds each
create that many at the same moment, wait until every one is ready (or never
will be, or past the timeout), then remove them before the next round.

What a platform does differently lives in a back-end (:class:`ProbeBackend`):
:mod:`~labcap.measure.probes.docker` creates containers through the engine,
:mod:`~labcap.measure.probes.k8s` pods in a throw-away namespace. Everything else is
here, once: the rounds and their attempts, the cleanup held safe from a second
Ctrl-C, the manifest, the startup records, the per-step window rows (each phase
an "endpoint" ``startup.<phase>`` in the same HDR histograms as request
latencies, so ``labcap plan`` and ``labcap report`` read a probe like any run)
and the per-concurrency table.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from labcap import __version__
from labcap.collectors.base import Collector, RunContext, StartupRecord
from labcap.collectors.docker import contention_by_step
from labcap.collectors.host import HostCollector, HostSettings
from labcap.environment import fingerprint
from labcap.errors import LabcapError
from labcap.loadtests.recorder import WindowRecorder
from labcap.model import SCHEMA_VERSION, LoadPlan, build_plan, plan_to_dict
from labcap.slo import parse_slo
from labcap.store import (
    FAILURE_COLUMNS,
    FAILURES,
    JOURNAL,
    WINDOW_COLUMNS,
    WINDOWS,
    RunDir,
    atomic_write_parquet,
    prepare_run_dir,
    read_journal,
    run_lock,
)

PROBE_LABEL = "labcap.probe"
SCENARIO = "probe-startup"
# A storm has a handful of startups a step, too few for a p95 (planner.capacity.MIN_SAMPLES
# asks 20): the default judges the slowest one, which one startup suffices for.
DEFAULT_SLOS = ("startup.ready:max_ms=30000", "error_pct=0")
# Every phase column of a startup record (``<phase>_s``), NaN where it never happened.
RECORD_PHASES = (
    "pulled", "created", "started", "running", "healthy", "http_ready", "ready", "exited",
)  # fmt: skip
# The columns each probe adds to its back-end's startup record.
ROUND_COLUMNS = ("step_index", "round", "concurrency", "create_call_s")

Progress = Callable[[str], None]


class ProbeSettings(Protocol):
    """What every probe's settings have (each back-end adds its own)."""

    @property
    def image(self) -> str: ...
    @property
    def concurrency(self) -> tuple[int, ...]: ...
    @property
    def repeat(self) -> int: ...
    @property
    def command(self) -> tuple[str, ...]: ...
    @property
    def env(self) -> tuple[str, ...]: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def interval_s(self) -> float: ...
    @property
    def slos(self) -> tuple[str, ...]: ...


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartupRow:
    """One line of the probe's table: a concurrency level's phase percentiles."""

    step_index: int
    concurrency: int
    containers: int
    ready: int
    failed: int
    create_call_p50_ms: float | None
    running_p50_ms: float | None
    running_p95_ms: float | None
    ready_p50_ms: float | None
    ready_p95_ms: float | None
    ready_p99_ms: float | None
    ready_max_ms: float | None
    outcomes: dict[str, int]


@dataclass(frozen=True)
class ProbeResult:
    path: Path
    run_id: str
    status: str
    reasons: tuple[str, ...]
    rows: tuple[StartupRow, ...]
    contention: tuple[dict[str, Any], ...]
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.path),
            "run_id": self.run_id,
            "status": self.status,
            "status_reasons": list(self.reasons),  # the run summary's key (schemas/plan)
            "reasons": list(self.reasons),  # the older key, kept for readers of it
            "interrupted": self.interrupted,
            "startup": [asdict(r) for r in self.rows],
            "contention": list(self.contention),
        }


@dataclass(frozen=True)
class Attempt:
    """One container or pod the probe asked for."""

    step_index: int
    name: str
    requested_unix: float
    create_call_s: float | None
    container_id: str | None  # the container's id or the pod's uid; None: nothing was created
    failure: str | None = None  # pull-failed | create-failed when nothing was created
    reason: str = ""
    lost: str = ""  # the call did not reach the engine or API server at all: why
    image: str = ""  # on the record of an attempt the collector never saw


@dataclass(frozen=True)
class Round:
    step_index: int
    concurrency: int
    started_unix: float
    ended_unix: float
    attempts: tuple[Attempt, ...]


class SourceLost(Exception):
    """The engine or API server went away: the probe stops and writes what it measured."""


class ProbeRefused(LabcapError):
    """The probe cannot start at all; ``reason`` goes into the failed run's manifest."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ContainerNotReady(Exception):
    """A container that did not become ready; its text is the failure reason in the report."""


# --- what a back-end provides ------------------------------------------------------------------


class StartupCollector(Collector, Protocol):
    """A collector that times each startup and knows when one is settled."""

    def startup_records(self) -> list[Any]:
        """One :class:`StartupRecord` (or subclass) per container or pod seen."""

    def terminal(self, ids: list[str]) -> set[str]:
        """Those of ``ids`` that are ready or never will be."""

    def give_up(self, ids: list[str], reason: str) -> None:
        """Fix the outcome of those not ready yet (before they are removed)."""


@dataclass(frozen=True)
class BackendTraits:
    """The words and columns in which back-ends differ, not their behaviour."""

    target: str  # the manifest's target, and the window rows' user class
    noun: str  # containers | pods
    storm_verb: str  # starting | creating (progress lines)
    cleanup_note: str  # what an interrupted probe says it is doing
    lost_why: str  # a settled attempt's reason when the source is lost mid-round
    record_type: type[StartupRecord]  # the startup records' class: their columns
    fed_phases: tuple[str, ...]  # phases before ready that become startup.<phase> endpoints
    missing_ready_via: str  # ready_via of an attempt the collector never saw
    missing_reason: str  # and its reason when the attempt had none
    tables: tuple[str, ...]  # the collector's tables written beside the records
    samples_table: str | None  # the one of them holding container samples (contention)


@dataclass(frozen=True)
class ManifestParts:
    """A back-end's part of the manifest, merged into the common one."""

    scenario: dict[str, Any]  # beside name, image, command, repeat, timeout_s
    hosts: dict[str, Any]
    note: str  # how the phase times are measured
    probe: dict[str, Any] = field(default_factory=dict)  # beside run_id and label
    sections: dict[str, Any] = field(default_factory=dict)  # more top-level keys


class ProbeBackend(Protocol):
    """What differs between platforms: creating, watching and removing containers or pods."""

    traits: BackendTraits
    run_id: str
    collector: StartupCollector

    def manifest_parts(self) -> ManifestParts:
        """The back-end's scenario fields, hosts, notes and sections of the manifest."""

    def start(self, ctx: RunContext) -> None:
        """Start what needs no cleanup; raise :class:`ProbeRefused` when the probe cannot run."""

    def prepare(self, ctx: RunContext, progress: Progress) -> None:
        """Get ready for the first round (cleanup follows); :class:`SourceLost` stops the probe."""

    def creator(self, step_index: int, round_index: int, n: int) -> Callable[[int], Attempt]:
        """What creates and starts the round's ``k``-th container or pod (n calls at once)."""

    def remove(self, step_index: int, round_index: int, ids: list[str]) -> None:
        """Remove a round's containers or pods (their ids) before the next round."""

    def lost(self) -> bool:
        """True while the source is unreachable (the wait for readiness stops)."""

    def lost_after(self, last: Round) -> str:
        """Why the source is gone after this round, or "" while it answers."""

    def cleanup(self, progress: Progress) -> str:
        """Remove everything the probe created; a reason (with the manual command) if not all."""

    def late_reasons(self, reasons: list[str]) -> list[str]:
        """Reasons known once the collector stopped (its gaps), given those so far."""

    def probe_extra(self) -> dict[str, Any]:
        """More of the manifest's ``probe`` section, written when the run is finalised."""

    def startup_table(self, records: Any, levels: tuple[int, ...]) -> tuple[StartupRow, ...]:
        """The printed per-concurrency table (see :func:`startup_table`)."""


# --- settings, plan, clock ---------------------------------------------------------------------


def validate_common(settings: ProbeSettings) -> None:
    """What every startup probe (Docker or Kubernetes) refuses before anything starts."""
    if not settings.image:
        raise LabcapError("--image is required")
    if not settings.concurrency or min(settings.concurrency) < 1:
        raise LabcapError("--concurrency needs positive whole numbers, e.g. 1,4,8")
    if settings.repeat < 1:
        raise LabcapError("--repeat must be at least 1")
    if settings.timeout_s <= 0 or settings.interval_s <= 0:
        raise LabcapError("--timeout and --interval must be greater than zero")
    for slo in settings.slos:
        parse_slo(slo)
    for kv in settings.env:
        if "=" not in kv or not kv.split("=", 1)[0]:
            raise LabcapError(f"--env {kv!r}: use KEY=VALUE")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _probe_plan(levels: tuple[int, ...], step_s: float) -> LoadPlan:
    """One step per concurrency level, each ``step_s`` long."""
    return build_plan(levels, step_s, settle_s=0.0, window_s=step_s, spawn_rate=float(max(levels)))


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class _PlanClock:
    """The probe feeds the recorder in plan time, after the fact."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Cleanup must finish: a second Ctrl-C during it would leave containers behind."""
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


# --- the run ----------------------------------------------------------------------------------


def run_probe(
    backend: ProbeBackend,
    settings: ProbeSettings,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Progress = lambda _msg: None,
) -> ProbeResult:
    """Run the storms through ``backend`` and leave a finalised run directory in ``out``.

    Whatever happens (success, Ctrl-C or SIGTERM, a lost source, an error), the
    back-end's cleanup runs with signals held off, and every attempt is accounted for.
    """
    prepare_run_dir(out, overwrite=overwrite)
    with run_lock(out):
        run = RunDir(out)
        provisional = _probe_plan(settings.concurrency, settings.timeout_s + 5)
        manifest = _initial_manifest(backend, settings, provisional)
        run.write_manifest(manifest)
        ctx = RunContext(run_dir=out, plan=provisional, progress=progress)
        try:
            backend.start(ctx)
        except ProbeRefused as e:
            run.write_manifest(dict(manifest, status="failed", status_reasons=[e.reason]))
            raise
        host = HostCollector(HostSettings(interval_s=settings.interval_s))
        host.start(ctx)
        rounds: list[Round] = []
        reasons: list[str] = []
        interrupted = False
        try:
            backend.prepare(ctx, progress)
            _storms(backend, settings, rounds, progress)
        except KeyboardInterrupt:
            interrupted = True
            reasons.append("interrupted: the probe was stopped (SIGINT/SIGTERM)")
            progress(f"interrupted: {backend.traits.cleanup_note}")
        except SourceLost as e:
            reasons.append(str(e))
            progress(f"{e}; writing what was measured")
        finally:
            with _signals_held():
                leftover = backend.cleanup(progress)
            backend.collector.stop()
            host.stop()
        if leftover:
            reasons.append(leftover)
        records = _records_frame(rounds, backend)
        reasons.extend(backend.late_reasons(reasons))
        return _finish(
            run, manifest, settings, rounds, records, backend, host, reasons, interrupted, progress
        )


def _initial_manifest(
    backend: ProbeBackend, settings: ProbeSettings, plan: LoadPlan
) -> dict[str, Any]:
    """The manifest of a probe still running (``pid`` lets readers tell a dead one)."""
    parts = backend.manifest_parts()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "labcap", "version": __version__},
        "status": "running",
        "status_reasons": [],
        "pid": os.getpid(),
        "target": backend.traits.target,
        "scenario": {
            "name": SCENARIO,
            "image": settings.image,
            "command": list(settings.command),
            **parts.scenario,
            "repeat": settings.repeat,
            "timeout_s": settings.timeout_s,
        },
        "hosts": parts.hosts,
        **parts.sections,
        "load": plan_to_dict(plan),
        "slos": list(settings.slos),
        "environment": fingerprint(),
        "notes": [parts.note],
        "probe": {
            "run_id": backend.run_id,
            "label": f"{PROBE_LABEL}={backend.run_id}",
            **parts.probe,
        },
        "started_at": _now_iso(),
        "ended_at": None,
    }


def _storms(
    backend: ProbeBackend, settings: ProbeSettings, rounds: list[Round], progress: Progress
) -> None:
    noun, verb = backend.traits.noun, backend.traits.storm_verb
    for step_index, n in enumerate(settings.concurrency):
        for r in range(settings.repeat):
            progress(f"step {step_index + 1}: {verb} {n} {noun} at once (round {r + 1})")
            _storm_round(backend, step_index, r, n, settings.timeout_s, rounds)
            gone = backend.lost_after(rounds[-1])
            if gone:
                raise SourceLost(gone)


def _storm_round(
    backend: ProbeBackend,
    step_index: int,
    round_index: int,
    n: int,
    timeout_s: float,
    rounds: list[Round],
) -> None:
    """Issue ``n`` creates at the same moment, wait until every one is ready or never will
    be (``collector.terminal``), give up on the rest, remove them.

    The round is appended to ``rounds`` even when interrupted, so the cleanup and the
    run directory account for every attempt.
    """
    started = time.time()
    create = backend.creator(step_index, round_index, n)
    collector = backend.collector
    gate = threading.Barrier(n)

    def one(k: int) -> Attempt:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=10)  # issue the creates together: that is the storm
        return create(k)

    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="labcap-probe")
    futures = [pool.submit(one, k) for k in range(n)]
    why = f"not ready within {timeout_s:g} s"
    try:
        ids = _ids(f.result() for f in futures)
        deadline = time.monotonic() + timeout_s
        while len(collector.terminal(ids)) < len(ids) and time.monotonic() < deadline:
            if backend.lost():
                why = backend.traits.lost_why
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        why = "interrupted before it was ready"
        raise
    finally:
        pool.shutdown(wait=True)  # in-flight creates finish, so nothing escapes the cleanup
        attempts = tuple(f.result() for f in futures if f.done() and f.exception() is None)
        ids = _ids(attempts)
        collector.give_up(ids, why)
        backend.remove(step_index, round_index, ids)
        rounds.append(Round(step_index, n, started, time.time(), attempts))


def _ids(attempts: Iterable[Attempt]) -> list[str]:
    return [a.container_id for a in attempts if a.container_id]


# --- the run directory ------------------------------------------------------------------------


def _records_frame(rounds: list[Round], backend: ProbeBackend) -> Any:
    """Every attempt's startup record, with its step, round and create-call time."""
    import pandas as pd

    by_id = {r.container_id: r for r in backend.collector.startup_records()}
    rows = []
    per_step: dict[int, int] = {}
    for rnd in rounds:
        i = per_step[rnd.step_index] = per_step.get(rnd.step_index, -1) + 1
        for a in rnd.attempts:
            rec = by_id.get(a.container_id or "") or _missing_record(a, backend.traits)
            row = asdict(rec)
            row.update(
                step_index=a.step_index,
                round=i,
                concurrency=rnd.concurrency,
                create_call_s=a.create_call_s if a.create_call_s is not None else math.nan,
            )
            rows.append(row)
    cols = [f.name for f in fields(backend.traits.record_type)] + list(ROUND_COLUMNS)
    return pd.DataFrame(rows, columns=cols)


def _missing_record(a: Attempt, traits: BackendTraits) -> StartupRecord:
    """An attempt without a startup record: nothing created, or the collector never saw it."""
    nan = math.nan
    return traits.record_type(
        container_id=a.container_id or "",
        container=a.name,
        image=a.image,
        service="",
        project="",
        t_unix=a.requested_unix,
        origin="requested",
        requested_s=0.0,
        ready_via=traits.missing_ready_via,
        clock_source="labcap",
        outcome=a.failure or "timeout",
        exit_code=nan,
        oom_killed=False,
        restarts=0,
        reason=a.reason or traits.missing_reason,
        **{f"{p}_s": nan for p in RECORD_PHASES},
    )


def _finish(
    run: RunDir,
    manifest: dict[str, Any],
    settings: ProbeSettings,
    rounds: list[Round],
    records: Any,
    backend: ProbeBackend,
    host: HostCollector,
    reasons: list[str],
    interrupted: bool,
    progress: Progress,
) -> ProbeResult:
    """Write the run directory: the records and tables, window rows, the final manifest."""
    traits = backend.traits
    step_spans = _step_spans(rounds)
    step_s = max([max(e - s, 0.1) for s, e in step_spans.values()] or [1.0])
    plan = _probe_plan(settings.concurrency, math.ceil(step_s * 10) / 10)
    samples, host_samples = _write_tables(run, rounds, step_spans, records, backend, host)
    finished_steps = {r.step_index for r in rounds}
    if not interrupted and not reasons and finished_steps != set(range(len(plan.steps))):
        reasons.append("not every step ran")
    _write_windows(run, plan, records, finished_steps, reasons, traits)
    contention = contention_by_step(samples, host_samples, records, plan)
    attempted = len(records)
    status = _probe_status(records, interrupted, reasons)
    manifest = dict(
        manifest,
        status=status,
        status_reasons=reasons,
        ended_at=_now_iso(),
        load=plan_to_dict(plan),
        collectors=[asdict(backend.collector.status()), asdict(host.status())],
        contention=contention,
    )
    manifest["probe"] = dict(
        manifest["probe"],
        step_duration_s={str(i): round(e - s, 3) for i, (s, e) in step_spans.items()},
        slot_s=plan.steps[0].duration_s,
        **backend.probe_extra(),
    )
    manifest["notes"] = manifest["notes"] + [
        f"windows.parquet lays the steps out as equal slots of {plan.steps[0].duration_s:g} s "
        "(the longest step); t_s in the tables is real time since the first storm"
    ]
    run.write_manifest(manifest)
    rows = backend.startup_table(records, settings.concurrency)
    progress(f"probe {status}: {attempted} {traits.noun} in {len(rounds)} rounds, in {run.path}")
    return ProbeResult(
        run.path,
        manifest["probe"]["run_id"],
        status,
        tuple(reasons),
        rows,
        tuple(contention),
        interrupted,
    )


def _write_tables(
    run: RunDir,
    rounds: list[Round],
    step_spans: dict[int, tuple[float, float]],
    records: Any,
    backend: ProbeBackend,
    host: HostCollector,
) -> tuple[Any, Any]:
    """The records and the collectors' tables, placed on the steps (``t_s`` since the first
    storm, ``step_index``); returns the container samples (or None) and the host samples."""
    t0 = rounds[0].started_unix if rounds else time.time()
    starts = [step_spans[i][0] for i in sorted(step_spans)]

    def place(frame: Any) -> Any:
        if not len(frame):
            return frame.assign(t_s=[], step_index=[])
        frame = frame.assign(t_s=frame["t_unix"] - t0)
        frame["step_index"] = [_step_of(t, starts) for t in frame["t_unix"]]
        return frame

    atomic_write_parquet(
        run.path / "startup_records.parquet", records.assign(t_s=records["t_unix"] - t0)
    )
    collected = backend.collector.tables()
    placed = {name: place(collected[name]) for name in backend.traits.tables}
    host_samples = place(host.tables()["host_samples"])
    for name, frame in placed.items():
        atomic_write_parquet(run.path / f"{name}.parquet", frame)
    atomic_write_parquet(run.path / "host_samples.parquet", host_samples)
    samples_table = backend.traits.samples_table
    return (placed[samples_table] if samples_table else None), host_samples


def _probe_status(records: Any, interrupted: bool, reasons: list[str]) -> str:
    """failed when no image could be had at all (its reason first), partial when stopped
    or troubled, else complete: containers that never got ready are the measurement."""
    attempted = len(records)
    pull_failed = int((records["outcome"] == "pull-failed").sum()) if attempted else 0
    if attempted and pull_failed == attempted:
        reasons.insert(0, str(records["reason"].iloc[0]))
        return "failed"
    return "partial" if (interrupted or reasons) else "complete"


def _step_spans(rounds: list[Round]) -> dict[int, tuple[float, float]]:
    spans: dict[int, tuple[float, float]] = {}
    for r in rounds:
        s, e = spans.get(r.step_index, (r.started_unix, r.ended_unix))
        spans[r.step_index] = (min(s, r.started_unix), max(e, r.ended_unix))
    return spans


def _step_of(t: float, starts: list[float]) -> int:
    """The step running at ``t`` (-1 before the first)."""
    return max(-1, bisect.bisect_right(starts, t) - 1)


def _write_windows(
    run: RunDir,
    plan: LoadPlan,
    records: Any,
    finished: set[int],
    reasons: list[str],
    traits: BackendTraits,
) -> None:
    """Phase durations as per-step window rows (HDR histograms), like request latencies."""
    import pandas as pd

    clock = _PlanClock()
    journal_path = run.path / JOURNAL
    concurrency = {s.index: s.users for s in plan.steps}
    current = [0]
    with open(journal_path, "w", encoding="utf-8") as journal:
        rec = WindowRecorder(
            plan, journal, active_users=lambda: concurrency[current[0]], clock=clock
        )
        rec.start()
        last_end = 0.0
        for step in plan.steps:
            if step.index not in finished:
                break
            current[0] = step.index
            clock.t = step.start_s + 1e-6
            for row in records[records["step_index"] == step.index].itertuples():
                _feed(rec, row, traits)
            clock.t = last_end = step.end_s
            rec.advance()
        clock.t = last_end
        if reasons:
            rec.close("interrupted", "; ".join(reasons))
        else:
            rec.close("complete")
    journal_rows = read_journal(journal_path)
    windows = [r for r in journal_rows if r.get("kind") == "window"]
    failures = [r for r in journal_rows if r.get("kind") == "failure"]
    atomic_write_parquet(
        run.path / WINDOWS,
        pd.DataFrame(
            [{c: r.get(c) for c in WINDOW_COLUMNS} for r in windows], columns=WINDOW_COLUMNS
        ),
    )
    atomic_write_parquet(
        run.path / FAILURES,
        pd.DataFrame(
            [{c: r.get(c) for c in FAILURE_COLUMNS} for r in failures], columns=FAILURE_COLUMNS
        ),
    )
    journal_path.unlink(missing_ok=True)


def _feed(rec: WindowRecorder, row: Any, traits: BackendTraits) -> None:
    """One startup record as recorder calls: ``startup.create_call``, each phase it passed,
    and ``startup.ready`` (a failure, with the outcome and reason, when it never got ready)."""
    source = traits.target
    if not math.isnan(row.create_call_s):
        rec.on_request(source, "startup.create_call", row.create_call_s * 1000)
    for phase in traits.fed_phases:
        value = getattr(row, f"{phase}_s")
        if not math.isnan(value):
            rec.on_request(source, f"startup.{phase}", value * 1000)
    if row.outcome == "ready":
        rec.on_request(source, "startup.ready", row.ready_s * 1000)
    else:
        why = ContainerNotReady(f"{row.outcome}: {row.reason}")
        rec.on_request(source, "startup.ready", None, exception=why)


# --- the table --------------------------------------------------------------------------------


def quantile_ms(frame: Any, col: str, p: float) -> float | None:
    """The ``p``-th percentile of a seconds column, in ms (None when it has no value)."""
    vals = frame[col].dropna()
    return None if not len(vals) else round(float(vals.quantile(p / 100)) * 1000, 1)


def step_records(records: Any, step_index: int) -> Any:
    return records[records["step_index"] == step_index] if len(records) else records


def startup_table(records: Any, levels: tuple[int, ...]) -> tuple[StartupRow, ...]:
    """Per concurrency level: how many became ready, and phase percentiles in ms."""
    rows = []
    for i, n in enumerate(levels):
        recs = step_records(records, i)
        if not len(recs):
            continue
        ok = recs[recs["outcome"] == "ready"]
        rows.append(
            StartupRow(
                step_index=i,
                concurrency=n,
                containers=len(recs),
                ready=len(ok),
                failed=len(recs) - len(ok),
                create_call_p50_ms=quantile_ms(recs, "create_call_s", 50),
                running_p50_ms=quantile_ms(recs, "running_s", 50),
                running_p95_ms=quantile_ms(recs, "running_s", 95),
                ready_p50_ms=quantile_ms(ok, "ready_s", 50),
                ready_p95_ms=quantile_ms(ok, "ready_s", 95),
                ready_p99_ms=quantile_ms(ok, "ready_s", 99),
                ready_max_ms=quantile_ms(ok, "ready_s", 100),
                outcomes={str(k): int(v) for k, v in recs["outcome"].value_counts().items()},
            )
        )
    return tuple(rows)


def format_ms(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def not_ready_line(row: StartupRow) -> str | None:
    """The table's line under a level where some never got ready (None when all did)."""
    bad = {k: v for k, v in row.outcomes.items() if k != "ready"}
    if not bad:
        return None
    return f"{'':>11} not ready: " + ", ".join(f"{v} {k}" for k, v in bad.items())


__all__ = [
    "DEFAULT_SLOS",
    "PROBE_LABEL",
    "SCENARIO",
    "Attempt",
    "BackendTraits",
    "ContainerNotReady",
    "ManifestParts",
    "ProbeBackend",
    "ProbeRefused",
    "ProbeResult",
    "ProbeSettings",
    "Round",
    "SourceLost",
    "StartupCollector",
    "StartupRow",
    "run_probe",
    "startup_table",
    "validate_common",
]
