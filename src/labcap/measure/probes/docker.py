"""Spawn-storm probe: start N containers at once, time every startup phase, clean up.

Each concurrency level is one *step*; within it, ``repeat`` rounds each start
that many containers at the same moment, wait until every one is ready (or
exited, or past the timeout), then remove them before the next round. The
phase times come from :class:`~labcap.collectors.docker.DockerCollector`
(the engine's own timestamps), so the probe only orchestrates.

The run directory is an ordinary labcap run: ``manifest.json`` (scenario
``probe-startup``, one step per concurrency level), ``startup_records``,
``container_samples`` and ``host_samples`` tables, and per-step window rows
in which each phase is an "endpoint" (``startup.ready``, ``startup.running``
...) holding the phase durations in the same HDR histograms as request
latencies, so ``labcap plan`` and ``labcap report`` read it unchanged.

Every container carries the label ``labcap.probe=<run id>`` and is removed by
that label in a ``finally``: on success, on Ctrl-C or SIGTERM, and on errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labcap import __version__
from labcap.collectors.base import RunContext, StartupRecord
from labcap.collectors.docker import (
    HTTP_PATH_LABEL,
    HTTP_PORT_LABEL,
    DockerCollector,
    DockerSettings,
    contention_by_step,
    describe_unavailable,
    docker_host_description,
)
from labcap.collectors.host import HostCollector, HostSettings
from labcap.environment import fingerprint
from labcap.errors import LabcapError
from labcap.loadtests.recorder import WindowRecorder
from labcap.measure.cleanup import MANAGED_BY, MANAGED_BY_LABEL, RUN_ID_LABEL
from labcap.model import SCHEMA_VERSION, LoadPlan, build_plan, parse_slo, plan_to_dict
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
DEFAULT_SLOS = ("startup.ready:p95_ms=30000", "error_pct=0")
# The phases recorded as window "endpoints", in the order a container passes them.
PHASE_ENDPOINTS = ("started", "running", "healthy", "http_ready", "ready")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class StartupProbeSettings:
    image: str = field(metadata={"help": "Image to start (must be present locally)."})
    concurrency: tuple[int, ...] = field(
        default=(1, 4, 8), metadata={"help": "Containers started at once, per step."}
    )
    repeat: int = field(default=1, metadata={"help": "Rounds per concurrency level."})
    command: tuple[str, ...] = field(
        default=(), metadata={"help": "Command (argv); {port} becomes the container's port."}
    )
    env: tuple[str, ...] = field(default=(), metadata={"help": "KEY=VALUE environment."})
    port: str | None = field(
        default=None,
        metadata={"help": "HTTP readiness port: a number, or auto (a free port each, as $PORT)."},
    )
    path: str = field(default="/", metadata={"help": "HTTP readiness path."})
    timeout_s: float = field(default=60.0, metadata={"help": "A container not ready by then."})
    interval_s: float = field(default=1.0, metadata={"help": "Resource sampling interval."})
    slos: tuple[str, ...] = field(default=DEFAULT_SLOS, metadata={"help": "Startup SLOs."})


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
            "reasons": list(self.reasons),
            "interrupted": self.interrupted,
            "startup": [asdict(r) for r in self.rows],
            "contention": list(self.contention),
        }


@dataclass(frozen=True)
class _Attempt:
    """One container the probe asked for."""

    step_index: int
    name: str
    image: str
    requested_unix: float
    create_call_s: float | None
    container_id: str | None
    failure: str | None = None  # pull-failed | create-failed when no container exists
    reason: str = ""
    engine_error: str = ""  # the API call failed to reach the engine at all


@dataclass(frozen=True)
class _Round:
    step_index: int
    concurrency: int
    started_unix: float
    ended_unix: float
    attempts: tuple[_Attempt, ...]


class _EngineLost(Exception):
    pass


def validate_common(settings: Any) -> None:
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


def validate(settings: StartupProbeSettings) -> StartupProbeSettings:
    """Refuse impossible settings before anything starts."""
    validate_common(settings)
    if settings.port is not None and settings.port != "auto":
        if not settings.port.isdigit() or not 0 < int(settings.port) < 65536:
            raise LabcapError(f"--port {settings.port!r}: use a port number or auto")
        if max(settings.concurrency) > 1:
            raise LabcapError(
                "containers share the host's network, so each needs its own port: "
                "use --port auto (a free port each, passed as $PORT and {port} in --command)"
            )
    for kv in settings.env:
        if "=" not in kv:
            raise LabcapError(f"--env {kv!r}: use KEY=VALUE")
    return settings


def run_startup_probe(
    settings: StartupProbeSettings,
    out: Path,
    *,
    client: Any | None = None,
    overwrite: bool = False,
    progress: Progress = lambda _msg: None,
) -> ProbeResult:
    """Run the probe and leave a finalised run directory in ``out``."""
    validate(settings)
    client = client or _client_from_env(max(settings.concurrency) + 8)
    prepare_run_dir(out, overwrite=overwrite)
    run_id = uuid.uuid4().hex[:12]
    with run_lock(out):
        run = RunDir(out)
        provisional = _plan(settings, settings.timeout_s + 5)
        manifest = _initial_manifest(settings, provisional, run_id, client)
        run.write_manifest(manifest)
        host = HostCollector(HostSettings(interval_s=settings.interval_s))
        docker_c = DockerCollector(
            DockerSettings(
                labels=(f"{PROBE_LABEL}={run_id}",),
                name_patterns=(),
                interval_s=settings.interval_s,
                ready_timeout_s=settings.timeout_s,
            ),
            client=client,
        )
        ctx = RunContext(run_dir=out, plan=provisional, progress=progress)
        docker_c.start(ctx)
        if not docker_c.status().available:
            run.write_manifest(
                dict(manifest, status="failed", status_reasons=[docker_c.status().reason])
            )
            raise LabcapError(f"docker: {docker_c.status().reason}")
        host.start(ctx)
        rounds: list[_Round] = []
        reasons: list[str] = []
        interrupted = False
        try:
            _storms(settings, client, docker_c, run_id, rounds, progress)
        except KeyboardInterrupt:
            interrupted = True
            reasons.append("interrupted: the probe was stopped (SIGINT/SIGTERM)")
            progress("interrupted: removing the probe's containers")
        except _EngineLost as e:
            reasons.append(str(e))
            progress(f"{e}; writing what was measured")
        finally:
            leftover = _remove_by_label(client, run_id)
            docker_c.stop()
            host.stop()
        if leftover:
            reasons.append(leftover)
        return _finalise(
            run, manifest, settings, rounds, docker_c, host, reasons, interrupted, progress
        )


def _client_from_env(pool: int) -> Any:
    try:
        import docker
    except ImportError:
        raise LabcapError("the docker package is not installed: pip install docker") from None
    try:
        client = docker.from_env(max_pool_size=pool)
        client.ping()
    except Exception as e:
        raise LabcapError(
            f"docker: {describe_unavailable(e, docker_host_description(None))}"
        ) from None
    return client


def _plan(settings: StartupProbeSettings, step_s: float) -> LoadPlan:
    return build_plan(
        settings.concurrency,
        step_s,
        settle_s=0.0,
        window_s=step_s,
        spawn_rate=float(max(settings.concurrency)),
    )


def _initial_manifest(
    settings: StartupProbeSettings, plan: LoadPlan, run_id: str, client: Any
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "labcap", "version": __version__},
        "status": "running",
        "status_reasons": [],
        "pid": os.getpid(),
        "target": "docker",
        "scenario": {
            "name": SCENARIO,
            "image": settings.image,
            "command": list(settings.command),
            "port": settings.port,
            "path": settings.path,
            "repeat": settings.repeat,
            "timeout_s": settings.timeout_s,
        },
        "hosts": {"docker": docker_host_description(client)},
        "load": plan_to_dict(plan),
        "slos": list(settings.slos),
        "environment": fingerprint(),
        "notes": [
            "each step starts its concurrency's containers at once, repeat times; phase "
            "times are seconds after each container's create event, from the engine's own "
            "timestamps (http_ready: labcap's clock, loopback)",
        ],
        "probe": {"run_id": run_id, "label": f"{PROBE_LABEL}={run_id}"},
        "started_at": _now(),
        "ended_at": None,
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- the storms -----------------------------------------------------------------------------


def _storms(
    settings: StartupProbeSettings,
    client: Any,
    collector: DockerCollector,
    run_id: str,
    rounds: list[_Round],
    progress: Progress,
) -> None:
    for step_index, n in enumerate(settings.concurrency):
        for r in range(settings.repeat):
            progress(f"step {step_index + 1}: starting {n} containers at once (round {r + 1})")
            _storm(settings, client, collector, run_id, step_index, r, n, rounds)
            gone = _engine_gone(client, collector, rounds[-1])
            if gone:
                raise _EngineLost(gone)


def _storm(
    settings: StartupProbeSettings,
    client: Any,
    collector: DockerCollector,
    run_id: str,
    step_index: int,
    round_index: int,
    n: int,
    rounds: list[_Round],
) -> None:
    """One round: ``n`` creates issued together, a wait for readiness, removal."""
    ports = [_free_port() if settings.port == "auto" else settings.port for _ in range(n)]

    def one(k: int) -> _Attempt:
        name = f"labcap-probe-{run_id}-{step_index}-{round_index}-{k}"
        return _create_and_start(settings, client, collector, run_id, name, ports[k], step_index)

    storm_round(
        StormRound(step_index, n, settings.timeout_s, "the engine was lost before it was ready"),
        one,
        collector,
        lambda: collector.engine_lost,
        lambda ids: _remove(client, ids),
        rounds,
    )


@dataclass(frozen=True)
class StormRound:
    step_index: int
    concurrency: int
    timeout_s: float
    lost_why: str  # the outcome's reason when the source is lost mid-round


def storm_round(
    spec: StormRound,
    create: Callable[[int], Any],
    collector: Any,
    lost: Callable[[], bool],
    remove: Callable[[list[str]], None],
    rounds: list[Any],
) -> None:
    """Issue ``create(k)`` for k < n at the same moment, wait until every container or pod
    is ready or never will be (``collector.terminal``), give up on the rest, remove them.

    Shared by the Docker and Kubernetes probes. Attempts carry their id as
    ``container_id`` or ``uid``; the round is appended to ``rounds`` even when
    interrupted, so the cleanup and the run directory account for every attempt.
    """
    started = time.time()
    n = spec.concurrency
    gate = threading.Barrier(n)

    def one(k: int) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=10)  # issue the creates together: that is the storm
        return create(k)

    def ids_of(attempts: Any) -> list[str]:
        return [
            i
            for a in attempts
            if (i := getattr(a, "container_id", None) or getattr(a, "uid", None))
        ]

    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="labcap-probe")
    futures = [pool.submit(one, k) for k in range(n)]
    why = f"not ready within {spec.timeout_s:g} s"
    try:
        ids = ids_of(f.result() for f in futures)
        deadline = time.monotonic() + spec.timeout_s
        while len(collector.terminal(ids)) < len(ids) and time.monotonic() < deadline:
            if lost():
                why = spec.lost_why
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        why = "interrupted before it was ready"
        raise
    finally:
        pool.shutdown(wait=True)  # in-flight creates finish, so nothing escapes the cleanup
        attempts = tuple(f.result() for f in futures if f.done() and f.exception() is None)
        ids = ids_of(attempts)
        collector.give_up(ids, why)
        remove(ids)
        rounds.append(_Round(spec.step_index, n, started, time.time(), attempts))


def _create_and_start(
    settings: StartupProbeSettings,
    client: Any,
    collector: DockerCollector,
    run_id: str,
    name: str,
    port: str | None,
    step_index: int,
) -> _Attempt:
    import docker

    env = dict(kv.split("=", 1) for kv in settings.env)
    labels = {
        PROBE_LABEL: run_id,
        "labcap.step": str(step_index),
        MANAGED_BY_LABEL: MANAGED_BY,  # labcap cleanup finds leftovers by these two
        RUN_ID_LABEL: run_id,
    }
    if port:
        env["PORT"] = port
        labels[HTTP_PORT_LABEL] = port
        labels[HTTP_PATH_LABEL] = settings.path
    command = [c.replace("{port}", port or "") for c in settings.command] or None
    requested = time.time()
    try:
        cid = client.api.create_container(
            settings.image,
            command=command,
            environment=env,
            labels=labels,
            name=name,
            host_config=client.api.create_host_config(network_mode="host"),
        )["Id"]
    except docker.errors.ImageNotFound:
        why = (
            f"image {settings.image} not found locally "
            "(labcap never pulls: docker pull or docker load it first)"
        )
        return _Attempt(step_index, name, settings.image, requested, None, None, "pull-failed", why)
    except Exception as e:
        lost = _unreachable(e, client)
        return _Attempt(
            step_index,
            name,
            settings.image,
            requested,
            None,
            None,
            "create-failed",
            _short(e),
            lost,
        )
    create_call_s = time.time() - requested
    collector.note_requested(cid, requested)
    try:
        client.api.start(cid)
    except Exception as e:
        collector.note_start_failed(cid, f"start failed: {_short(e)}")
        lost = _unreachable(e, client)
        return _Attempt(
            step_index, name, settings.image, requested, create_call_s, cid, None, "", lost
        )
    return _Attempt(step_index, name, settings.image, requested, create_call_s, cid)


def _unreachable(e: BaseException, client: Any) -> str:
    """Why the engine could not be reached at all when ``e`` says so, else ""."""
    import requests

    if isinstance(e, requests.exceptions.ConnectionError | ConnectionError | OSError):
        return describe_unavailable(e, docker_host_description(client))
    return ""


def _short(e: BaseException) -> str:
    text = getattr(e, "explanation", None) or str(e)
    return f"{type(e).__name__}: {text}"[:200]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _remove(client: Any, ids: list[str]) -> None:
    def rm(cid: str) -> None:
        with contextlib.suppress(Exception):  # gone already, or the engine is: label sweep
            client.api.remove_container(cid, force=True, v=True)

    if ids:
        with ThreadPoolExecutor(max_workers=min(len(ids), 8)) as pool:
            list(pool.map(rm, ids))


def _remove_by_label(client: Any, run_id: str) -> str:
    """Remove every container this probe created; a reason string if some may remain."""
    old = _ignore_signals()
    try:
        flt = {"label": f"{PROBE_LABEL}={run_id}"}
        try:
            ids = [c["Id"] for c in client.api.containers(all=True, filters=flt)]
            _remove(client, ids)
            left = client.api.containers(all=True, filters=flt)
        except Exception as e:
            return (
                f"could not remove the probe's containers ({_short(e)}); once the engine is "
                f"back: docker rm -f $(docker ps -aq --filter label={PROBE_LABEL}={run_id})"
            )
        if left:
            return f"{len(left)} containers labelled {PROBE_LABEL}={run_id} could not be removed"
        return ""
    finally:
        _restore_signals(old)


def _ignore_signals() -> dict[int, Any]:
    """Cleanup must finish: a second Ctrl-C during it would leave containers behind."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(old: dict[int, Any]) -> None:
    for s, handler in old.items():
        signal.signal(s, handler)


def _engine_gone(client: Any, collector: DockerCollector, last: _Round) -> str:
    """Why the engine is gone, or "" while it still answers.

    The event stream notices a stopped daemon only when its connection drops,
    which can be after the daemon has stopped our containers; a ping after any
    round with failures (or a lost stream) settles it.
    """
    unreachable = [a.engine_error for a in last.attempts if a.engine_error]
    if unreachable:
        return f"lost the Docker engine during step {last.step_index + 1}: {unreachable[0]}"
    failed = any(a.failure for a in last.attempts)
    exited = collector.startup_records()
    suspicious = failed or collector.engine_lost or any(r.outcome == "exited" for r in exited)
    if not suspicious:
        return ""
    try:
        client.ping()
        return ""
    except Exception as e:
        lost = [w for w in collector.status().warnings if w.startswith("lost the Docker engine")]
        where = docker_host_description(client)
        return lost[0] if lost else f"lost the Docker engine: {describe_unavailable(e, where)}"


# --- the run directory ----------------------------------------------------------------------


def _finalise(
    run: RunDir,
    manifest: dict[str, Any],
    settings: StartupProbeSettings,
    rounds: list[_Round],
    docker_c: DockerCollector,
    host: HostCollector,
    reasons: list[str],
    interrupted: bool,
    progress: Progress,
) -> ProbeResult:
    return finish_probe(
        run,
        manifest,
        settings,
        rounds,
        _records(rounds, docker_c),
        docker_c,
        host,
        reasons,
        interrupted,
        progress,
        tables=("container_samples",),
        samples_table="container_samples",
        feed=_feed,
        table=startup_table,
        noun="containers",
    )


def finish_probe(
    run: RunDir,
    manifest: dict[str, Any],
    settings: Any,
    rounds: list[Any],
    records: Any,
    collector: Any,
    host: HostCollector,
    reasons: list[str],
    interrupted: bool,
    progress: Progress,
    *,
    tables: tuple[str, ...],
    samples_table: str | None,
    feed: Callable[[WindowRecorder, Any], None],
    table: Callable[[Any, tuple[int, ...]], tuple[Any, ...]],
    noun: str,
    probe_extra: dict[str, Any] | None = None,
) -> ProbeResult:
    """Write a startup probe's run directory (the Docker and Kubernetes probes alike).

    ``records`` are the probe's startup records; ``tables`` names the collector's tables
    written beside them with ``t_s``/``step_index`` (``samples_table``, if any, is the one
    whose container samples feed the contention summary); ``feed`` turns a record into
    window rows and ``table`` builds the printed per-concurrency table.
    """
    t0 = rounds[0].started_unix if rounds else time.time()
    step_spans = _step_spans(rounds)
    step_s = max([max(e - s, 0.1) for s, e in step_spans.values()] or [1.0])
    plan = _plan(settings, math.ceil(step_s * 10) / 10)
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
    collected = collector.tables()
    placed = {name: place(collected[name]) for name in tables}
    host_samples = place(host.tables()["host_samples"])
    for name, frame in placed.items():
        atomic_write_parquet(run.path / f"{name}.parquet", frame)
    atomic_write_parquet(run.path / "host_samples.parquet", host_samples)
    finished_steps = {r.step_index for r in rounds}
    if not interrupted and not reasons and finished_steps != set(range(len(plan.steps))):
        reasons.append("not every step ran")
    _write_windows(run, plan, records, finished_steps, reasons, feed=feed)
    samples = placed[samples_table] if samples_table else None
    contention = contention_by_step(samples, host_samples, records, plan)
    attempted = len(records)
    pull_failed = int((records["outcome"] == "pull-failed").sum()) if attempted else 0
    if attempted and pull_failed == attempted:
        status = "failed"
        reasons.insert(0, str(records["reason"].iloc[0]))
    else:
        status = "partial" if (interrupted or reasons) else "complete"
    manifest = dict(
        manifest,
        status=status,
        status_reasons=reasons,
        ended_at=_now(),
        load=plan_to_dict(plan),
        collectors=[asdict(collector.status()), asdict(host.status())],
        contention=contention,
    )
    manifest["probe"] = dict(
        manifest["probe"],
        step_duration_s={str(i): round(e - s, 3) for i, (s, e) in step_spans.items()},
        slot_s=plan.steps[0].duration_s,
        **(probe_extra or {}),
    )
    manifest["notes"] = manifest["notes"] + [
        f"windows.parquet lays the steps out as equal slots of {plan.steps[0].duration_s:g} s "
        "(the longest step); t_s in the tables is real time since the first storm"
    ]
    run.write_manifest(manifest)
    rows = table(records, settings.concurrency)
    progress(f"probe {status}: {attempted} {noun} in {len(rounds)} rounds, in {run.path}")
    return ProbeResult(
        run.path,
        manifest["probe"]["run_id"],
        status,
        tuple(reasons),
        rows,
        tuple(contention),
        interrupted,
    )


def _step_spans(rounds: list[_Round]) -> dict[int, tuple[float, float]]:
    spans: dict[int, tuple[float, float]] = {}
    for r in rounds:
        s, e = spans.get(r.step_index, (r.started_unix, r.ended_unix))
        spans[r.step_index] = (min(s, r.started_unix), max(e, r.ended_unix))
    return spans


def _step_of(t: float, starts: list[float]) -> int:
    import bisect

    return max(-1, bisect.bisect_right(starts, t) - 1)


def _records(rounds: list[_Round], collector: DockerCollector) -> Any:
    """Every attempt's startup record, with its step, round and create-call time."""
    import pandas as pd

    by_id = {r.container_id: r for r in collector.startup_records()}
    rows = []
    per_step: dict[int, int] = {}
    for rnd in rounds:
        n = rnd.concurrency
        i = per_step[rnd.step_index] = per_step.get(rnd.step_index, -1) + 1
        for a in rnd.attempts:
            rec = by_id.get(a.container_id or "")
            if rec is None:
                rec = _missing_record(a)
            row = asdict(rec)
            row.update(
                step_index=a.step_index,
                round=i,
                concurrency=n,
                create_call_s=a.create_call_s if a.create_call_s is not None else math.nan,
            )
            rows.append(row)
    cols = list(StartupRecord.__dataclass_fields__) + [
        "step_index",
        "round",
        "concurrency",
        "create_call_s",
    ]
    return pd.DataFrame(rows, columns=cols)


def _missing_record(a: _Attempt) -> StartupRecord:
    """An attempt without a startup record: no container, or its events never came."""
    nan = math.nan
    outcome = a.failure or "timeout"
    reason = a.reason or "the engine reported no create event for it (engine lost?)"
    phases = {f"{p}_s": nan for p in ("pulled", "created", "exited") + PHASE_ENDPOINTS}
    return StartupRecord(
        container_id=a.container_id or "",
        container=a.name,
        image=a.image,
        service="",
        project="",
        t_unix=a.requested_unix,
        origin="requested",
        requested_s=0.0,
        ready_via="running",
        clock_source="labcap",
        outcome=outcome,
        exit_code=nan,
        oom_killed=False,
        restarts=0,
        reason=reason,
        **phases,
    )


class ContainerNotReady(Exception):
    """A container that did not become ready; its text is the failure reason in the report."""


def _write_windows(
    run: RunDir,
    plan: LoadPlan,
    records: Any,
    finished: set[int],
    reasons: list[str],
    feed: Callable[[WindowRecorder, Any], None] | None = None,
) -> None:
    """Phase durations as per-step window rows (HDR histograms), like request latencies.

    ``feed`` turns one startup record into recorder calls (default: Docker's phases).
    """
    feed = feed or _feed
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
                feed(rec, row)
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


class _PlanClock:
    """The probe feeds the recorder in plan time, after the fact."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _feed(rec: WindowRecorder, row: Any) -> None:
    if not math.isnan(row.create_call_s):
        rec.on_request("docker", "startup.create_call", row.create_call_s * 1000)
    for phase in PHASE_ENDPOINTS[:-1]:
        value = getattr(row, f"{phase}_s")
        if not math.isnan(value):
            rec.on_request("docker", f"startup.{phase}", value * 1000)
    if row.outcome == "ready":
        rec.on_request("docker", "startup.ready", row.ready_s * 1000)
    else:
        why = ContainerNotReady(f"{row.outcome}: {row.reason}")
        rec.on_request("docker", "startup.ready", None, exception=why)


def startup_table(records: Any, levels: tuple[int, ...]) -> tuple[StartupRow, ...]:
    """Per concurrency level: how many became ready, and phase percentiles in ms."""
    rows = []
    for i, n in enumerate(levels):
        recs = records[records["step_index"] == i] if len(records) else records
        if not len(recs):
            continue
        ok = recs[recs["outcome"] == "ready"]

        def q(frame: Any, col: str, p: float) -> float | None:
            vals = frame[col].dropna()
            return None if not len(vals) else round(float(vals.quantile(p / 100)) * 1000, 1)

        rows.append(
            StartupRow(
                step_index=i,
                concurrency=n,
                containers=len(recs),
                ready=len(ok),
                failed=len(recs) - len(ok),
                create_call_p50_ms=q(recs, "create_call_s", 50),
                running_p50_ms=q(recs, "running_s", 50),
                running_p95_ms=q(recs, "running_s", 95),
                ready_p50_ms=q(ok, "ready_s", 50),
                ready_p95_ms=q(ok, "ready_s", 95),
                ready_p99_ms=q(ok, "ready_s", 99),
                ready_max_ms=q(ok, "ready_s", 100),
                outcomes={str(k): int(v) for k, v in recs["outcome"].value_counts().items()},
            )
        )
    return tuple(rows)


def format_table(rows: tuple[StartupRow, ...]) -> str:
    """The table the CLI prints: startup percentiles versus concurrency."""

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f}"

    head = (
        f"{'concurrency':>11} {'started':>7} {'ready':>5}  {'create p50':>10}  "
        f"{'running p50':>11} {'p95':>6}  {'ready p50':>9} {'p95':>6} {'p99':>6} {'max':>6}  (ms)"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.concurrency:>11} {r.containers:>7} {r.ready:>5}  {ms(r.create_call_p50_ms):>10}  "
            f"{ms(r.running_p50_ms):>11} {ms(r.running_p95_ms):>6}  {ms(r.ready_p50_ms):>9} "
            f"{ms(r.ready_p95_ms):>6} {ms(r.ready_p99_ms):>6} {ms(r.ready_max_ms):>6}"
        )
        bad = {k: v for k, v in r.outcomes.items() if k != "ready"}
        if bad:
            lines.append(f"{'':>11} not ready: " + ", ".join(f"{v} {k}" for k, v in bad.items()))
    return "\n".join(lines)


__all__ = [
    "StartupProbeSettings",
    "ProbeResult",
    "StartupRow",
    "run_startup_probe",
    "startup_table",
    "format_table",
    "validate",
]
