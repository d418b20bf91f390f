"""One capacity run, end to end: manifest, load engine subprocess, finalised tables.

The load itself runs in ``labcap.loadtests.engine`` (a subprocess, because
Locust monkey-patches the process it is imported in). This module prepares
the run directory, supervises the engine, forwards interrupts, and turns the
engine's journal into Parquet tables with a final status.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from labcap import __version__
from labcap.collectors.base import Collector, RunContext
from labcap.collectors.guard import Guarded
from labcap.environment import fingerprint
from labcap.errors import LabcapError, RunFailedError
from labcap.loadtests.catalog import get_scenario
from labcap.loadtests.engine import SESSIONS_ENV
from labcap.loadtests.kernel_workloads import LOG as WORKLOAD_LOG
from labcap.loadtests.kernel_workloads import TABLE as WORKLOAD_TABLE
from labcap.loadtests.kernel_workloads import WorkloadOutcome, read_outcomes, summarise_outcomes
from labcap.loadtests.lockstep import summarise
from labcap.measure.cleanup import die_with_parent
from labcap.measure.hub_accounts import HubLogin, swept
from labcap.measure.remote import JoinedWorker, RemoteWorkers, gather_workers
from labcap.model import (
    BASELINE_SIDE,
    CANDIDATE_SIDE,
    SCHEMA_VERSION,
    LoadPlan,
    plan_from_dict,
    plan_to_dict,
)
from labcap.planner.capacity import STEPS_TABLE, step_statistics, steps_frame
from labcap.redact import redact_url
from labcap.slo import Slo, slos_to_records
from labcap.store import (
    FAILURE_COLUMNS,
    FAILURES,
    JOURNAL,
    WINDOW_COLUMNS,
    WINDOWS,
    RunDir,
    atomic_write_json,
    atomic_write_parquet,
    prepare_run_dir,
    read_journal,
    run_lock,
    split_sides,
)
from labcap.validity import assess as assess_validity
from labcap.validity import clock_stamp

ENGINE_CONFIG = ".engine.json"
SENDS = "sends.parquet"
PASSWORD_ENV = "LABCAP_HUB_PASSWORD"

Progress = Callable[[str], None]


class Interrupted(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler so SIGTERM and Ctrl-C take one path."""


@dataclass(frozen=True)
class RunRequest:
    out: Path
    scenario: str
    hosts: dict[str, str]
    plan: LoadPlan
    slos: tuple[Slo, ...]
    target: str = "remote"
    overwrite: bool = False
    # secrets handed to the engine through its environment, never written anywhere
    hub_password: str = field(default="", repr=False)
    notes: tuple[str, ...] = ()
    # sampled while the load runs; their tables land in the run directory
    collectors: tuple[Collector, ...] = ()
    # de-synchronise locustfile users (random first delay, jittered waits); off only to
    # demonstrate lock-step
    jitter: bool = True
    # the generator's own floor and ceiling on this machine (labcap.measure.calibrate), if measured
    calibration: dict[str, Any] | None = None
    # Locust worker processes on this machine (0: one process, no master/worker)
    workers: int = 0
    # called about twice a second with the journal's path while the load runs; a
    # non-empty answer (the reason) stops the run early (the adaptive search's clear fail)
    watch: Callable[[Path], str | None] | None = field(default=None, repr=False)
    # the adaptive search's settings (labcap.measure.search): the engine picks each step's users
    search: dict[str, Any] | None = None
    # --kernel-workload (loadtests.kernel_workloads.KernelWorkload.to_dict()), if any
    kernel_workload: dict[str, Any] | None = None
    # how hub users get in (--login); the API journey's accounts are swept after the load
    hub: HubLogin | None = None
    # load generators on other machines (`labcap worker`s) the master waits for
    remote: RemoteWorkers | None = None
    # a paired run: the candidate's hosts, loaded in the same windows as ``hosts`` (the
    # baseline), half the users on each side
    candidate_hosts: dict[str, str] | None = None


@dataclass(frozen=True)
class RunResult:
    path: Path
    status: str
    reasons: tuple[str, ...]
    interrupted: bool = False


def resolve_scenario(scenario: str) -> dict[str, Any]:
    """A built-in scenario's description, or a user locustfile's path."""
    if scenario.endswith(".py") or os.sep in scenario:
        path = Path(scenario)
        if not path.is_file():
            raise LabcapError(f"scenario file {scenario} does not exist")
        return {"name": path.name, "path": str(path.resolve()), "needs": ["default"]}
    info = get_scenario(scenario)
    return {
        "name": info.name,
        "module": info.module,
        "classes": [list(c) for c in info.classes],
        "needs": list(info.needs),
    }


def execute_run(req: RunRequest, progress: Progress) -> RunResult:
    """Run the step load described by ``req`` and leave a finalised run directory."""
    # a collector that raises becomes a gap in the evidence, never a crashed run
    req = replace(req, collectors=tuple(Guarded(c) for c in req.collectors))
    scenario = resolve_scenario(req.scenario)
    missing = [n for n in scenario["needs"] if not (req.hosts.get(n) or req.hosts.get("default"))]
    if missing:
        raise LabcapError(f"scenario {scenario['name']!r} needs a URL for {', '.join(missing)}")
    cfg = {
        "scenario": scenario,
        "hosts": req.hosts,
        "load": plan_to_dict(req.plan),
        "jitter": req.jitter,
        "workers": req.workers,
        "search": req.search,
        "slos": slos_to_records(req.slos),
        "hub": req.hub.engine_config() if req.hub is not None else None,
        "candidate_hosts": req.candidate_hosts,
    }
    if req.kernel_workload:
        cfg["kernel_workload"] = {**req.kernel_workload, "log": str(req.out / WORKLOAD_LOG)}
    joined: list[JoinedWorker] = []
    if req.remote is not None:  # before the run directory: a timeout leaves nothing behind
        joined = gather_workers(req.remote, cfg, progress)
        cfg["workers"] = len(joined)
        cfg["remote"] = {"bind_host": req.remote.bind_host, "port": req.remote.locust_port}
    with run_lock(req.out):  # locked before clearing: a live run's files are never touched
        prepare_run_dir(req.out, overwrite=req.overwrite)
        run = RunDir(req.out)
        manifest = _initial_manifest(req, scenario)
        manifest["clock"] = {"start": clock_stamp()}  # a wall-clock jump shows at finalise
        if joined:
            manifest["workers"] = [w.record() for w in joined]
        run.write_manifest(manifest)
        atomic_write_json(req.out / ENGINE_CONFIG, cfg)
        journal = req.out / JOURNAL
        journal.touch()
        ctx = RunContext(run_dir=req.out, plan=req.plan, progress=progress)
        started = _start_collectors(req.collectors, ctx, progress)
        try:
            with swept(req.hosts.get("jupyterhub"), req.hub, progress):
                rc, interrupted, stopped = _supervise_engine(req, journal, progress, joined)
        finally:
            for c in started:
                c.stop()
        manifest["collectors"] = [asdict(c.status()) for c in req.collectors]
        try:
            _write_collector_tables(run, req.collectors, req.plan, progress)
            if req.kernel_workload:
                manifest["kernel_workload"] = _fold_workload_log(run, req.kernel_workload)
            # again: a collector whose tables() failed has a gap to record
            manifest["collectors"] = [asdict(c.status()) for c in req.collectors]
            result = _finalise(
                run, manifest, rc, progress, searching=req.search is not None, stopped=stopped
            )
        except OSError as e:  # disk full, directory removed: the journal still holds the run
            raise RunFailedError(
                f"{req.out}: could not write the results ({e.strerror or e}); every window "
                f"measured so far stays in {JOURNAL}, and plan/report read it as a partial run"
            ) from None
        return RunResult(result.path, result.status, result.reasons, interrupted)


def _start_collectors(
    collectors: tuple[Collector, ...], ctx: RunContext, progress: Progress
) -> list[Collector]:
    started = []
    for c in collectors:
        c.start(ctx)
        started.append(c)
        st = c.status()
        if st.available:
            progress(f"collector {c.name}: sampling")
        else:
            progress(f"collector {c.name}: unavailable ({st.reason}); the run goes on without it")
    return started


def _write_collector_tables(
    run: RunDir, collectors: tuple[Collector, ...], plan: LoadPlan, progress: Progress
) -> None:
    """Each collector's tables as Parquet, with ``t_s`` and ``step_index`` beside ``t_unix``."""
    records = read_journal(run.path / JOURNAL)
    t0 = next((r["t0_unix"] for r in records if r.get("kind") == "start"), None)
    # when each step really began (the engine journals it): an adaptive search that ends a
    # probe early moves every later step forward of the plan's times
    began = {
        r["step_index"]: r["t_unix"] - t0
        for r in records
        if r.get("kind") == "step" and t0 is not None and "t_unix" in r
    }
    last = max(began, default=None)
    starts = [
        began.get(s.index, s.start_s if last is None or s.index < last else float("inf"))
        for s in plan.steps
    ]  # steps after the last that began never ran: samples after it are the last one's
    # two sources of one table (GPU samples from NVML and dcgm-exporter) share its file
    tables: dict[str, list[Any]] = {}
    for c in collectors:
        for name, frame in c.tables().items():
            if t0 is not None and "t_unix" in frame.columns and len(frame):
                frame = frame.assign(t_s=frame["t_unix"] - t0)
                frame["step_index"] = [
                    max(0, bisect.bisect_right(starts, t) - 1) if t >= 0 else -1
                    for t in frame["t_s"]
                ]
            tables.setdefault(name, []).append(frame)
            progress(f"collector {c.name}: {len(frame)} rows in {name}.parquet")
    for name, frames in tables.items():
        import pandas as pd

        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        atomic_write_parquet(run.path / f"{name}.parquet", frame)


def _fold_workload_log(run: RunDir, workload: dict[str, Any]) -> dict[str, Any]:
    """The workload cells' outcomes as ``kernel_workload.parquet``; their summary returned."""
    import pandas as pd

    log = run.path / WORKLOAD_LOG
    rows = read_outcomes(log)
    cols = list(WorkloadOutcome.__dataclass_fields__)
    atomic_write_parquet(run.path / f"{WORKLOAD_TABLE}.parquet", pd.DataFrame(rows, columns=cols))
    log.unlink(missing_ok=True)
    return summarise_outcomes(workload, rows)


def _initial_manifest(req: RunRequest, scenario: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "labcap", "version": __version__},
        "status": "running",
        "status_reasons": [],
        "pid": os.getpid(),
        "target": req.target,
        "scenario": {k: v for k, v in scenario.items() if k != "classes"},
        "hosts": {k: redact_url(v) for k, v in req.hosts.items()},
        **_sides(req),
        "load": plan_to_dict(req.plan),
        "slos": slos_to_records(req.slos),
        "environment": fingerprint(),
        "notes": list(req.notes),
        "calibration": req.calibration,
        "hub_accounts": req.hub.manifest() if req.hub is not None else None,
        "started_at": _now(),
        "ended_at": None,
    }


def _sides(req: RunRequest) -> dict[str, Any]:
    """A paired run's ``sides`` section (schema 2.1); nothing for a run of one target."""
    if not req.candidate_hosts:
        return {}
    return {
        "sides": {
            side: {"hosts": {k: redact_url(v) for k, v in hosts.items()}}
            for side, hosts in ((BASELINE_SIDE, req.hosts), (CANDIDATE_SIDE, req.candidate_hosts))
        }
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _load_line(req: RunRequest) -> str:
    """What the load will be: the ladder, or the adaptive search's bounds (its steps are
    placeholders until the engine picks each probe's users)."""
    step_s = req.plan.steps[0].duration_s
    if req.search is not None:
        return (
            f"load: adaptive search up to {req.search['max_users']} users, at most "
            f"{len(req.plan.steps)} probes of up to {step_s:g}s each (a probe ends once its "
            "verdict is clear)"
        )
    return (
        f"load: {len(req.plan.steps)} steps of {step_s:g}s "
        f"(users {', '.join(str(s.users) for s in req.plan.steps)}), "
        f"about {req.plan.duration_s:g}s"
    )


def _forward_lines(stream: Any, progress: Progress) -> None:
    """The engine's stderr lines through ``progress`` (so a live status line stays whole)."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.strip():
            progress(line.removeprefix("labcap: "))
    stream.close()


def _supervise_engine(
    req: RunRequest,
    journal: Path,
    progress: Progress,
    joined: list[JoinedWorker] = (),  # type: ignore[assignment]
) -> tuple[int, bool, str | None]:
    """Run the engine to its end; returns (exit code, whether we were interrupted, the
    reason ``req.watch`` stopped it early)."""
    import threading

    env = dict(os.environ)
    if req.hub_password:
        env[PASSWORD_ENV] = req.hub_password
    if req.hub is not None and req.hub.token:
        from labcap.loadtests.engine import HUB_TOKEN_ENV

        env[HUB_TOKEN_ENV] = req.hub.token
    if joined:  # the handshake's session keys: through the environment, never on disk
        env[SESSIONS_ENV] = json.dumps({w.name: w.session_key.hex() for w in joined})
    cmd = [
        sys.executable,
        "-m",
        "labcap.loadtests.engine",
        str(req.out / ENGINE_CONFIG),
        str(journal),
    ]
    progress(_load_line(req))
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,  # a SIGKILLed labcap leaves no engine running
    )
    reader = threading.Thread(target=_forward_lines, args=(proc.stderr, progress), daemon=True)
    reader.start()
    try:
        return _wait_engine(req, proc, journal, progress)
    finally:
        reader.join(timeout=5)


def _wait_engine(
    req: RunRequest, proc: subprocess.Popen[bytes], journal: Path, progress: Progress
) -> tuple[int, bool, str | None]:
    deadline_s = req.plan.duration_s + 120  # the engine stops itself; this is the backstop
    started = time.monotonic()
    try:
        while True:
            try:
                return proc.wait(timeout=0.5), False, None
            except subprocess.TimeoutExpired:
                why = req.watch(journal) if req.watch else None
                if why:
                    progress(f"stopping the run early: {why}")
                    return _stop_engine(proc, signal.SIGTERM), False, why
                if time.monotonic() - started > deadline_s:
                    progress("load engine overran its schedule: stopping it")
                    return _stop_engine(proc, signal.SIGTERM), False, None
    except KeyboardInterrupt as e:
        sig = signal.SIGTERM if isinstance(e, Interrupted) else signal.SIGINT
        progress("interrupted: letting the load engine save what it measured")
        return _stop_engine(proc, sig), True, None


def _stop_engine(proc: subprocess.Popen[bytes], sig: int) -> int:
    """Ask the engine to stop (it journals the open window), then insist."""
    import contextlib

    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    for _ in range(2):
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        except KeyboardInterrupt:
            continue  # a second Ctrl-C while we wait: keep waiting, the data is nearly safe
    return proc.wait()


def _finalise(
    run: RunDir,
    manifest: dict[str, Any],
    rc: int,
    progress: Progress,
    searching: bool = False,
    stopped: str | None = None,
) -> RunResult:
    import pandas as pd

    records = read_journal(run.path / JOURNAL)
    errors = [r["message"] for r in records if r.get("kind") == "error"]
    ends = [r for r in records if r.get("kind") == "end"]
    windows = [r for r in records if r.get("kind") == "window"]
    failures = [r for r in records if r.get("kind") == "failure"]
    reasons: list[str] = []
    if stopped:  # the watch hook's early stop: the target is clearly broken
        status = "failed"
        reasons = [f"stopped early: {stopped}", *errors]
    elif errors:
        status = "failed"
        reasons = errors
    elif ends and ends[-1]["status"] == "complete" and rc == 0:
        status = "complete"
    else:
        status = "partial"
        if ends and ends[-1].get("reason"):
            reasons.append(f"interrupted: {ends[-1]['reason']}")
        elif not ends:
            reasons.append(f"the load engine stopped unexpectedly (exit code {rc})")
    # A collector that lost its source mid-run (engine restarted, samples failing) leaves a
    # gap in the evidence: the run keeps what it has but is not a complete measurement.
    gaps = [
        f"collector {c['name']}: {w}"
        for c in manifest.get("collectors", [])
        if c.get("available")
        for w in c.get("warnings", [])
    ]
    if gaps and status == "complete":
        status = "partial"
    reasons.extend(gaps[:10])
    windows_df = pd.DataFrame(
        [{c: r.get(c) for c in WINDOW_COLUMNS} for r in windows], columns=WINDOW_COLUMNS
    )
    failures_df = pd.DataFrame(
        [{c: r.get(c) for c in FAILURE_COLUMNS} for r in failures], columns=FAILURE_COLUMNS
    )
    windows_df, failures_df = split_sides(windows_df), split_sides(failures_df)
    atomic_write_parquet(run.path / WINDOWS, windows_df)
    atomic_write_parquet(run.path / FAILURES, failures_df)
    plan = plan_from_dict(manifest["load"])
    if not manifest.get("sides"):  # a paired run's step statistics are per side: on read
        atomic_write_parquet(
            run.path / f"{STEPS_TABLE}.parquet", steps_frame(step_statistics(windows_df, plan))
        )
    manifest = dict(manifest, status=status, status_reasons=reasons, ended_at=_now())
    clients = [r for r in records if r.get("kind") == "clients"]
    if manifest.get("calibration") and clients:  # which floor applies: the users' client's
        manifest["calibration"] = dict(
            manifest["calibration"], floor_client=clients[-1]["floor_client"]
        )
    manifest["lockstep"] = _lockstep(run, records, progress)
    manifest["generator"] = _generator_cpu(records, progress)
    gaps = _lost_workers(records, manifest)
    gaps += [r["message"] for r in records if r.get("kind") == "worker_gap"]
    if gaps:  # windows merged without some Locust worker's data: not a complete measurement
        reasons.extend(gaps)
        if manifest["status"] == "complete":
            manifest["status"] = "partial"
    manifest = assess_validity(manifest, windows_df, failures_df)  # validity's checks
    status, reasons = manifest["status"], manifest["status_reasons"]
    if ends:
        manifest["late_requests"] = ends[-1].get("late_requests", 0)
    run.write_manifest(manifest)
    # The tables now hold everything the journal did.
    (run.path / JOURNAL).unlink(missing_ok=True)
    (run.path / ENGINE_CONFIG).unlink(missing_ok=True)
    if searching and status != "failed":  # its status is settled once the probes are a ladder
        progress(f"load done: {len(windows)} window records written to {run.path}")
    else:
        progress(f"run {status}: {len(windows)} window records written to {run.path}")
    if status == "failed" and not stopped:  # an early stop keeps its plan (exit 3, invalid)
        raise LabcapError(reasons[0])
    return RunResult(run.path, status, tuple(reasons))


def _lost_workers(records: list[dict[str, Any]], manifest: dict[str, Any]) -> list[str]:
    """One reason per worker lost mid-run (its windows before it were merged and kept)."""
    where = {w["name"]: w.get("address", "") for w in manifest.get("workers", [])}
    out = []
    for r in records:
        if r.get("kind") == "worker_lost":
            at = f" {where[r['worker']]}" if where.get(r["worker"]) else ""
            out.append(
                f"worker {r['worker']}{at} lost at window {r['window_index']}: its windows "
                "before it are kept, later windows lack its load"
            )
    return out


def _lockstep(run: RunDir, records: list[dict[str, Any]], progress: Progress) -> dict[str, Any]:
    """Send-burst statistics per window (sends.parquet) and the run's lock-step verdict."""
    import pandas as pd

    sends = [r for r in records if r.get("kind") == "sends"]
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "kind"} for r in sends])
    atomic_write_parquet(run.path / SENDS, frame)
    verdict = summarise([r for r in sends if not r.get("settling")])
    if verdict["flagged"]:
        progress(
            f"lock-step: {verdict['windows_flagged']} of {verdict['windows_judged']} steady "
            f"windows sent in synchronised bursts (up to {verdict['max_burst_pct']:g} % of "
            "sends): the generator, not the target, may set the tail latencies"
        )
    return verdict


CPU_WARN_PCT = 80.0
CPU_SPAN_S = 0.5  # the shortest span a generator's CPU share is taken over


def _generator_cpu(records: list[dict[str, Any]], progress: Progress) -> dict[str, Any]:
    """CPU per load-generator process (% of one core, per window) and a warning above 80 %."""
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("kind") == "generator":
            by_worker.setdefault(r["worker"], []).append(r)
    workers = {}
    for name, rows in sorted(by_worker.items()):
        rows.sort(key=lambda r: r["window_index"])
        # over spans of at least CPU_SPAN_S: the windows left of a probe the search ended
        # early close a millisecond apart, and a few ms of CPU over one read as 700 %
        pcts, a = [], rows[0] if rows else None
        for b in rows[1:]:
            if b["wall_s"] - a["wall_s"] >= CPU_SPAN_S:
                pcts.append(100 * (b["cpu_s"] - a["cpu_s"]) / (b["wall_s"] - a["wall_s"]))
                a = b
        workers[name] = {
            "windows": len(pcts),
            "cpu_pct_mean": round(sum(pcts) / len(pcts), 1) if pcts else None,
            "cpu_pct_max": round(max(pcts), 1) if pcts else None,
        }
    hot = [n for n, w in workers.items() if (w["cpu_pct_max"] or 0) > CPU_WARN_PCT]
    warnings = [
        f"load generator {n} used {workers[n]['cpu_pct_max']:g} % of a core in a window "
        f"(over {CPU_WARN_PCT:g} %): latencies may include the generator's own queueing; "
        "add --workers"
        for n in hot
    ]
    for w in warnings:
        progress(f"warning: {w}")
    return {"processes": len(workers), "per_worker": workers, "warnings": warnings}


def summarise_json(result: RunResult) -> str:
    return json.dumps(
        {"run": str(result.path), "status": result.status, "reasons": list(result.reasons)}
    )
