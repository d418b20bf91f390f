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
from labcap.loadtests.lockstep import summarise
from labcap.measure.cleanup import die_with_parent
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
    with run_lock(req.out):  # locked before clearing: a live run's files are never touched
        prepare_run_dir(req.out, overwrite=req.overwrite)
        run = RunDir(req.out)
        manifest = _initial_manifest(req, scenario)
        manifest["clock"] = {"start": clock_stamp()}  # a wall-clock jump shows at finalise
        run.write_manifest(manifest)
        cfg = {
            "scenario": scenario,
            "hosts": req.hosts,
            "load": plan_to_dict(req.plan),
            "jitter": req.jitter,
            "workers": req.workers,
            "search": req.search,
            "slos": slos_to_records(req.slos),
            "candidate_hosts": req.candidate_hosts,
        }
        atomic_write_json(req.out / ENGINE_CONFIG, cfg)
        journal = req.out / JOURNAL
        journal.touch()
        ctx = RunContext(run_dir=req.out, plan=req.plan, progress=progress)
        started = _start_collectors(req.collectors, ctx, progress)
        try:
            rc, interrupted = _supervise_engine(req, journal, progress)
        finally:
            for c in started:
                c.stop()
        manifest["collectors"] = [asdict(c.status()) for c in req.collectors]
        try:
            _write_collector_tables(run, req.collectors, req.plan, progress)
            # again: a collector whose tables() failed has a gap to record
            manifest["collectors"] = [asdict(c.status()) for c in req.collectors]
            result = _finalise(run, manifest, rc, progress, searching=req.search is not None)
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


def _supervise_engine(req: RunRequest, journal: Path, progress: Progress) -> tuple[int, bool]:
    """Run the engine to its end; returns (exit code, whether we were interrupted)."""
    env = dict(os.environ)
    if req.hub_password:
        env[PASSWORD_ENV] = req.hub_password
    cmd = [
        sys.executable,
        "-m",
        "labcap.loadtests.engine",
        str(req.out / ENGINE_CONFIG),
        str(journal),
    ]
    progress(
        f"load: {len(req.plan.steps)} steps of {req.plan.steps[0].duration_s:g}s "
        f"(users {', '.join(str(s.users) for s in req.plan.steps)}), "
        f"about {req.plan.duration_s:g}s"
    )
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,  # a SIGKILLed labcap leaves no engine running
    )
    deadline_s = req.plan.duration_s + 120  # the engine stops itself; this is the backstop
    started = time.monotonic()
    try:
        while True:
            try:
                return proc.wait(timeout=0.5), False
            except subprocess.TimeoutExpired:
                why = req.watch(journal) if req.watch else None
                if why:
                    progress(f"stopping the step early: {why}")
                    return _stop_engine(proc, signal.SIGTERM), False
                if time.monotonic() - started > deadline_s:
                    progress("load engine overran its schedule: stopping it")
                    return _stop_engine(proc, signal.SIGTERM), False
    except KeyboardInterrupt as e:
        sig = signal.SIGTERM if isinstance(e, Interrupted) else signal.SIGINT
        progress("interrupted: letting the load engine save what it measured")
        return _stop_engine(proc, sig), True


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
    run: RunDir, manifest: dict[str, Any], rc: int, progress: Progress, searching: bool = False
) -> RunResult:
    import pandas as pd

    records = read_journal(run.path / JOURNAL)
    errors = [r["message"] for r in records if r.get("kind") == "error"]
    ends = [r for r in records if r.get("kind") == "end"]
    windows = [r for r in records if r.get("kind") == "window"]
    failures = [r for r in records if r.get("kind") == "failure"]
    reasons: list[str] = []
    if errors:
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
    gaps = [r["message"] for r in records if r.get("kind") == "worker_gap"]
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
    if status == "failed":
        raise LabcapError(reasons[0])
    return RunResult(run.path, status, tuple(reasons))


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
