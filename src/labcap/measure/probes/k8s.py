"""Spawn-storm probe on Kubernetes: start N pods at once, time every phase, clean up.

The Kubernetes twin of :mod:`labcap.measure.probes.docker`: each concurrency level is one
step; within it, ``repeat`` rounds each create that many pods at the same
moment, wait until every one is Ready (or failed, or past the timeout), then
delete them and wait until they are gone before the next round.

Everything happens in a throw-away namespace ``labcap-probe-<run id>``
(labelled ``app.kubernetes.io/managed-by=labcap``), deleted in a ``finally``:
on success, on Ctrl-C or SIGTERM, and on errors. Pods use ``hostNetwork``
and ``imagePullPolicy: IfNotPresent`` (test images are local); the probe
waits for the namespace's default ServiceAccount (and, before 1.24, its
token secret) before the first pod, or the API server answers 500.

Phase times come from :class:`~labcap.collectors.kubernetes.KubernetesCollector`:
labcap's clock when each change arrived on the watch (sub-millisecond),
beside the API server's one-second condition timestamps. The run directory
has the Docker probe's shape (same tables and columns, windows with
``startup.*`` endpoints), so ``labcap report docker-run k8s-run`` compares
them side by side.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labcap import __version__
from labcap.clients.kube import KubeTarget, connect, describe_api_problem
from labcap.collectors.base import RunContext
from labcap.collectors.host import HostCollector, HostSettings
from labcap.collectors.kubernetes import (
    COLUMN_CLOCKS,
    MANAGED_BY,
    KubernetesCollector,
    KubernetesSettings,
    PodStartupRecord,
)
from labcap.environment import fingerprint
from labcap.errors import LabcapError
from labcap.loadtests.recorder import WindowRecorder
from labcap.measure.probes.docker import (
    DEFAULT_SLOS,
    PROBE_LABEL,
    SCENARIO,
    ContainerNotReady,
    ProbeResult,
    StartupRow,
    StormRound,
    _ignore_signals,
    _now,
    _plan,
    _restore_signals,
    _Round,
    finish_probe,
    storm_round,
    validate_common,
)
from labcap.model import SCHEMA_VERSION, plan_to_dict
from labcap.store import RunDir, prepare_run_dir, run_lock

NAMESPACE_PREFIX = "labcap-probe-"
ROUND_LABEL = "labcap.round"
# Phases in the order a pod passes them (all on labcap's watch clock).
K8S_PHASES = ("scheduled", "initialized", "started", "running", "containers_ready", "ready")
PULL_POLICIES = ("IfNotPresent", "Never", "Always")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class K8sProbeSettings:
    image: str = field(metadata={"help": "Image to start (present on the nodes)."})
    concurrency: tuple[int, ...] = field(
        default=(1, 4, 8), metadata={"help": "Pods created at once, per step."}
    )
    repeat: int = field(default=1, metadata={"help": "Rounds per concurrency level."})
    command: tuple[str, ...] = field(default=(), metadata={"help": "Container command (argv)."})
    env: tuple[str, ...] = field(default=(), metadata={"help": "KEY=VALUE environment."})
    timeout_s: float = field(default=60.0, metadata={"help": "A pod not Ready by then."})
    interval_s: float = field(default=1.0, metadata={"help": "Host sampling interval."})
    slos: tuple[str, ...] = field(default=DEFAULT_SLOS, metadata={"help": "Startup SLOs."})
    kubeconfig: str | None = field(default=None, metadata={"help": "Kubeconfig file."})
    context: str | None = field(default=None, metadata={"help": "Kubeconfig context."})
    pull_policy: str = field(
        default="IfNotPresent", metadata={"help": "imagePullPolicy of the probe's pods."}
    )


@dataclass(frozen=True)
class K8sStartupRow(StartupRow):
    """The Docker probe's row, plus p50/p95/p99/max (ms) of every pod phase."""

    phases: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Attempt:
    step_index: int
    name: str
    requested_unix: float
    create_call_s: float | None
    uid: str | None
    failure: str | None = None
    reason: str = ""
    api_error: str = ""  # the create call did not reach the API server


class _ApiLost(Exception):
    pass


def validate(settings: K8sProbeSettings) -> K8sProbeSettings:
    """Refuse impossible settings before anything starts."""
    validate_common(settings)
    if settings.pull_policy not in PULL_POLICIES:
        raise LabcapError(
            f"pull policy {settings.pull_policy!r}: use one of {', '.join(PULL_POLICIES)}"
        )
    for kv in settings.env:
        if "=" not in kv or not kv.split("=", 1)[0]:
            raise LabcapError(f"--env {kv!r}: use KEY=VALUE")
    return settings


def run_k8s_startup_probe(
    settings: K8sProbeSettings,
    out: Path,
    *,
    target: KubeTarget | None = None,
    overwrite: bool = False,
    progress: Progress = lambda _msg: None,
) -> ProbeResult:
    """Run the probe against a cluster and leave a finalised run directory in ``out``."""
    validate(settings)
    target = target or connect(
        settings.kubeconfig, settings.context, pool=max(settings.concurrency) + 8
    )
    from kubernetes import client

    core = client.CoreV1Api(target.api_client)
    prepare_run_dir(out, overwrite=overwrite)
    run_id = uuid.uuid4().hex[:12]
    namespace = f"{NAMESPACE_PREFIX}{run_id}"
    with run_lock(out):
        run = RunDir(out)
        manifest = _initial_manifest(settings, run_id, namespace, target)
        run.write_manifest(manifest)
        collector = KubernetesCollector(
            KubernetesSettings(
                namespaces=(namespace,),
                selector=f"{PROBE_LABEL}={run_id}",
                pending_threshold_s=settings.timeout_s,
            ),
            api_client=target.api_client,
        )
        host = HostCollector(HostSettings(interval_s=settings.interval_s))
        ctx = RunContext(run_dir=out, plan=_plan(settings, settings.timeout_s), progress=progress)  # type: ignore[arg-type]
        rounds: list[_Round] = []
        reasons: list[str] = []
        interrupted = False
        try:
            _create_namespace(core, namespace, run_id)
            collector.start(ctx)
            if not collector.status().available:
                raise _ApiLost(f"kubernetes: {collector.status().reason}")
            host.start(ctx)
            _wait_for_service_account(core, namespace, target.version, progress)
            _storms(settings, core, collector, namespace, run_id, rounds, progress)
        except KeyboardInterrupt:
            interrupted = True
            reasons.append("interrupted: the probe was stopped (SIGINT/SIGTERM)")
            progress("interrupted: deleting the probe's namespace")
        except _ApiLost as e:
            reasons.append(str(e))
            progress(f"{e}; writing what was measured")
        finally:
            leftover = _delete_namespace(core, namespace, progress)
            collector.stop()
            host.stop()
        if leftover:
            reasons.append(leftover)
        return _finalise(
            run, manifest, settings, rounds, collector, host, reasons, interrupted, progress
        )


def _initial_manifest(
    settings: K8sProbeSettings, run_id: str, namespace: str, target: KubeTarget
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "labcap", "version": __version__},
        "status": "running",
        "status_reasons": [],
        "target": "k8s",
        "scenario": {
            "name": SCENARIO,
            "image": settings.image,
            "command": list(settings.command),
            "repeat": settings.repeat,
            "timeout_s": settings.timeout_s,
            "pull_policy": settings.pull_policy,
        },
        "hosts": {"kubernetes": target.server},
        "kubernetes": {
            "server": target.server,
            "context": target.context,
            "version": target.version,
            "namespace": namespace,
        },
        "load": plan_to_dict(_plan(settings, settings.timeout_s + 5)),  # type: ignore[arg-type]
        "slos": list(settings.slos),
        "environment": fingerprint(),
        "clocks": COLUMN_CLOCKS,
        "notes": [
            "each step creates its concurrency's pods at once, repeat times, in a throw-away "
            "namespace; phase times are labcap's clock when the change arrived on the watch, "
            "seconds after the pod first appeared there (*_cond_s: the API server's 1 s "
            "condition timestamps)",
        ],
        "probe": {"run_id": run_id, "label": f"{PROBE_LABEL}={run_id}", "namespace": namespace},
        "started_at": _now(),
        "ended_at": None,
    }


# --- namespace and service account ------------------------------------------------------------


def _create_namespace(core: Any, namespace: str, run_id: str) -> None:
    body = {
        "metadata": {
            "name": namespace,
            "labels": {MANAGED_BY: "labcap", PROBE_LABEL: run_id},
        }
    }
    try:
        core.create_namespace(body, _request_timeout=(5, 30))
    except Exception as e:
        raise _ApiLost(f"could not create namespace {namespace}: {_api_short(e)}") from None


def _server_minor(version: str) -> int:
    m = re.match(r"v?(\d+)\.(\d+)", version or "")
    return int(m.group(2)) if m and m.group(1) == "1" else 99


def _wait_for_service_account(core: Any, namespace: str, version: str, progress: Progress) -> None:
    """Pods created before the default ServiceAccount (and its token, before 1.24) fail."""
    needs_secret = _server_minor(version) < 24
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            sa = core.read_namespaced_service_account(
                "default", namespace, _request_timeout=(5, 10)
            )
            if not needs_secret or sa.secrets:
                return
        time.sleep(0.2)
    raise _ApiLost(
        f"the default ServiceAccount of {namespace} got no token within 60 s "
        "(is kube-controller-manager running?)"
    )


def _delete_namespace(core: Any, namespace: str, progress: Progress) -> str:
    """Delete the probe's namespace (signals held off meanwhile); a reason if that failed."""
    old = _ignore_signals()
    try:
        try:
            core.delete_namespace(namespace, grace_period_seconds=0, _request_timeout=(5, 30))
        except Exception as e:
            if getattr(e, "status", None) == 404:
                return ""
            return (
                f"could not delete namespace {namespace} ({_api_short(e)}); once the API server "
                f"is back: kubectl delete namespace {namespace}"
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                core.read_namespace(namespace, _request_timeout=(5, 10))
            except Exception as e:
                if getattr(e, "status", None) == 404:
                    return ""
            time.sleep(0.5)
        progress(f"namespace {namespace} is still terminating; Kubernetes finishes it")
        return ""
    finally:
        _restore_signals(old)


def _api_short(e: BaseException) -> str:
    status = getattr(e, "status", None)
    if status:
        body = getattr(e, "body", None) or ""
        with contextlib.suppress(Exception):
            body = json.loads(body).get("message", body)
        return f"{status} {getattr(e, 'reason', '')}: {str(body)[:200]}".strip()
    return describe_api_problem(e, "?").replace(" at ?", "")


# --- the storms -------------------------------------------------------------------------------


def _storms(
    settings: K8sProbeSettings,
    core: Any,
    collector: KubernetesCollector,
    namespace: str,
    run_id: str,
    rounds: list[_Round],
    progress: Progress,
) -> None:
    for step_index, n in enumerate(settings.concurrency):
        for r in range(settings.repeat):
            progress(f"step {step_index + 1}: creating {n} pods at once (round {r + 1})")
            _storm(settings, core, collector, namespace, run_id, step_index, r, n, rounds)
            last = rounds[-1]
            lost = [a.api_error for a in last.attempts if a.api_error]
            if lost or collector.api_lost:
                why = lost[0] if lost else "the watch lost it"
                step = step_index + 1
                raise _ApiLost(f"lost the Kubernetes API server during step {step}: {why}")


def _storm(
    settings: K8sProbeSettings,
    core: Any,
    collector: KubernetesCollector,
    namespace: str,
    run_id: str,
    step_index: int,
    round_index: int,
    n: int,
    rounds: list[_Round],
) -> None:
    """One round: ``n`` creates issued together, a wait for readiness, deletion."""
    round_key = f"{step_index}-{round_index}"

    def one(k: int) -> _Attempt:
        name = f"probe-{step_index}-{round_index}-{k}"
        return _create_pod(
            settings, core, collector, namespace, run_id, round_key, name, step_index
        )

    storm_round(
        StormRound(
            step_index, n, settings.timeout_s, "the API server was lost before it was ready"
        ),
        one,
        collector,
        lambda: collector.api_lost,
        lambda uids: _delete_round(core, collector, namespace, run_id, round_key, uids),
        rounds,
    )


def _pod_body(settings: K8sProbeSettings, name: str, run_id: str, round_key: str) -> dict:
    container: dict[str, Any] = {
        "name": "probe",
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
    }
    if settings.command:
        container["command"] = list(settings.command)
    if settings.env:
        container["env"] = [
            {"name": k, "value": v} for k, v in (kv.split("=", 1) for kv in settings.env)
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {PROBE_LABEL: run_id, ROUND_LABEL: round_key, MANAGED_BY: "labcap"},
        },
        "spec": {
            "hostNetwork": True,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "enableServiceLinks": False,
            "containers": [container],
        },
    }


def _create_pod(
    settings: K8sProbeSettings,
    core: Any,
    collector: KubernetesCollector,
    namespace: str,
    run_id: str,
    round_key: str,
    name: str,
    step_index: int,
) -> _Attempt:
    body = _pod_body(settings, name, run_id, round_key)
    requested = collector.now()
    try:
        resp = core.create_namespaced_pod(
            namespace, body, _preload_content=False, _request_timeout=(5, 60)
        )
        uid = json.loads(resp.data)["metadata"]["uid"]
    except Exception as e:
        lost = "" if getattr(e, "status", None) else describe_api_problem(e, "?")
        why = _api_short(e)
        return _Attempt(step_index, name, requested, None, None, "create-failed", why, lost)
    call_s = collector.now() - requested
    collector.note_requested(uid, requested, name, namespace)
    return _Attempt(step_index, name, requested, call_s, uid)


def _delete_round(
    core: Any,
    collector: KubernetesCollector,
    namespace: str,
    run_id: str,
    round_key: str,
    uids: list[str],
) -> None:
    """Delete the round's pods and wait (bounded) until the watch saw them go."""
    if not uids:
        return
    with contextlib.suppress(Exception):  # the namespace deletion sweeps up what remains
        core.delete_collection_namespaced_pod(
            namespace,
            label_selector=f"{PROBE_LABEL}={run_id},{ROUND_LABEL}={round_key}",
            grace_period_seconds=0,
            _request_timeout=(5, 60),
        )
        deadline = time.monotonic() + 60
        while len(collector.gone(uids)) < len(uids) and time.monotonic() < deadline:
            if collector.api_lost:
                break
            time.sleep(0.05)


# --- the run directory ------------------------------------------------------------------------


def _finalise(
    run: RunDir,
    manifest: dict[str, Any],
    settings: K8sProbeSettings,
    rounds: list[_Round],
    collector: KubernetesCollector,
    host: HostCollector,
    reasons: list[str],
    interrupted: bool,
    progress: Progress,
) -> ProbeResult:
    records = _records(rounds, collector)
    gaps = [f"collector kubernetes: {w}" for w in collector.status().warnings]
    if gaps and not any(r.startswith("lost the Kubernetes") for r in reasons):
        reasons.extend(gaps[:10])
    return finish_probe(
        run,
        manifest,
        settings,
        rounds,
        records,
        collector,
        host,
        reasons,
        interrupted,
        progress,
        tables=("scheduling_conflicts", "node_inventory"),
        samples_table=None,
        feed=_feed,
        table=startup_table,
        noun="pods",
        probe_extra={"watch_resumes": collector.watch_resumes},
    )


def _records(rounds: list[_Round], collector: KubernetesCollector) -> Any:
    import pandas as pd

    by_uid = {r.container_id: r for r in collector.startup_records()}
    rows = []
    per_step: dict[int, int] = {}
    for rnd in rounds:
        i = per_step[rnd.step_index] = per_step.get(rnd.step_index, -1) + 1
        for a in rnd.attempts:
            rec = by_uid.get(a.uid or "") or _missing_record(a)
            row = asdict(rec)
            row.update(
                step_index=a.step_index,
                round=i,
                concurrency=rnd.concurrency,
                create_call_s=a.create_call_s if a.create_call_s is not None else math.nan,
            )
            rows.append(row)
    cols = list(PodStartupRecord.__dataclass_fields__) + [
        "step_index",
        "round",
        "concurrency",
        "create_call_s",
    ]
    return pd.DataFrame(rows, columns=cols)


def _missing_record(a: _Attempt) -> PodStartupRecord:
    nan = math.nan
    phases = ("pulled", "created", "started", "running", "healthy", "http_ready", "ready", "exited")
    return PodStartupRecord(
        container_id=a.uid or "",
        container=a.name,
        image="",
        service="",
        project="",
        t_unix=a.requested_unix,
        origin="requested",
        requested_s=0.0,
        ready_via="ready-condition",
        clock_source="labcap",
        outcome=a.failure or "timeout",
        exit_code=nan,
        oom_killed=False,
        restarts=0,
        reason=a.reason or "the watch never showed this pod (API server lost?)",
        **{f"{p}_s": nan for p in phases},
    )


def _feed(rec: WindowRecorder, row: Any) -> None:
    if not math.isnan(row.create_call_s):
        rec.on_request("k8s", "startup.create_call", row.create_call_s * 1000)
    for phase in ("pulled",) + K8S_PHASES[:-1]:
        value = getattr(row, f"{phase}_s")
        if not math.isnan(value):
            rec.on_request("k8s", f"startup.{phase}", value * 1000)
    if row.outcome == "ready":
        rec.on_request("k8s", "startup.ready", row.ready_s * 1000)
    else:
        why = ContainerNotReady(f"{row.outcome}: {row.reason}")
        rec.on_request("k8s", "startup.ready", None, exception=why)


def _q(frame: Any, col: str, p: float) -> float | None:
    vals = frame[col].dropna()
    return None if not len(vals) else round(float(vals.quantile(p / 100)) * 1000, 1)


def startup_table(records: Any, levels: tuple[int, ...]) -> tuple[K8sStartupRow, ...]:
    """Per concurrency level: how many pods became Ready, and phase percentiles in ms."""
    rows = []
    for i, n in enumerate(levels):
        recs = records[records["step_index"] == i] if len(records) else records
        if not len(recs):
            continue
        ok = recs[recs["outcome"] == "ready"]
        phases: dict[str, dict[str, float | None]] = {}
        for phase in ("create_call", "pulled") + K8S_PHASES:
            col = "create_call_s" if phase == "create_call" else f"{phase}_s"
            frame = ok if phase == "ready" else recs
            if not frame[col].notna().any():
                continue
            phases[phase] = {f"p{p}_ms": _q(frame, col, p) for p in (50, 95, 99)}
            phases[phase]["max_ms"] = _q(frame, col, 100)
        rows.append(
            K8sStartupRow(
                step_index=i,
                concurrency=n,
                containers=len(recs),
                ready=len(ok),
                failed=len(recs) - len(ok),
                create_call_p50_ms=_q(recs, "create_call_s", 50),
                running_p50_ms=_q(recs, "running_s", 50),
                running_p95_ms=_q(recs, "running_s", 95),
                ready_p50_ms=_q(ok, "ready_s", 50),
                ready_p95_ms=_q(ok, "ready_s", 95),
                ready_p99_ms=_q(ok, "ready_s", 99),
                ready_max_ms=_q(ok, "ready_s", 100),
                outcomes={str(k): int(v) for k, v in recs["outcome"].value_counts().items()},
                phases=phases,
            )
        )
    return tuple(rows)


def format_table(rows: tuple[K8sStartupRow, ...]) -> str:
    """p50/p95/p99/max per phase versus concurrency (ms after the pod appeared on the watch)."""

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f}"

    head = (
        f"{'concurrency':>11} {'pods':>4} {'ready':>5}  {'phase':<16} "
        f"{'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}  (ms, watch clock)"
    )
    lines = [head]
    for r in rows:
        first = True
        for phase, q in r.phases.items():
            lead = f"{r.concurrency:>11} {r.containers:>4} {r.ready:>5}" if first else " " * 22
            first = False
            lines.append(
                f"{lead}  {phase:<16} {ms(q['p50_ms']):>7} {ms(q['p95_ms']):>7} "
                f"{ms(q['p99_ms']):>7} {ms(q['max_ms']):>7}"
            )
        bad = {k: v for k, v in r.outcomes.items() if k != "ready"}
        if bad:
            lines.append(f"{'':>11} not ready: " + ", ".join(f"{v} {k}" for k, v in bad.items()))
    return "\n".join(lines)


__all__ = [
    "K8sProbeSettings",
    "K8sStartupRow",
    "NAMESPACE_PREFIX",
    "format_table",
    "run_k8s_startup_probe",
    "startup_table",
    "validate",
]
