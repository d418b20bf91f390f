"""Spawn-storm probe on Kubernetes: start N pods at once, time every phase, clean up.

The storms, the run directory and the table are the probe core's
(:mod:`labcap.measure.probes.core`); this back-end creates pods and deletes them. Each
round creates that many pods at the same moment, waits until every one is Ready (or
failed, or past the timeout), then deletes them and waits until they are gone before
the next round.

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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from labcap.clients.kube import KubeTarget, connect, describe_api_problem
from labcap.collectors.base import RunContext
from labcap.collectors.kubernetes import (
    COLUMN_CLOCKS,
    MANAGED_BY,
    KubernetesCollector,
    KubernetesSettings,
    PodStartupRecord,
)
from labcap.errors import LabcapError
from labcap.measure.probes.core import (
    DEFAULT_SLOS,
    PROBE_LABEL,
    Attempt,
    BackendTraits,
    ManifestParts,
    ProbeResult,
    Progress,
    Round,
    SourceLost,
    StartupRow,
    format_ms,
    new_run_id,
    not_ready_line,
    quantile_ms,
    run_probe,
    step_records,
    validate_common,
)
from labcap.measure.probes.core import (
    startup_table as base_startup_table,
)

NAMESPACE_PREFIX = "labcap-probe-"
ROUND_LABEL = "labcap.round"
# Phases in the order a pod passes them (all on labcap's watch clock).
K8S_PHASES = ("scheduled", "initialized", "started", "running", "containers_ready", "ready")
PULL_POLICIES = ("IfNotPresent", "Never", "Always")

TRAITS = BackendTraits(
    target="k8s",
    noun="pods",
    storm_verb="creating",
    cleanup_note="deleting the probe's namespace",
    lost_why="the API server was lost before it was ready",
    record_type=PodStartupRecord,
    fed_phases=("pulled",) + K8S_PHASES[:-1],
    missing_ready_via="ready-condition",
    missing_reason="the watch never showed this pod (API server lost?)",
    tables=("scheduling_conflicts", "node_inventory"),
    samples_table=None,
)


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


def validate(settings: K8sProbeSettings) -> K8sProbeSettings:
    """Refuse impossible settings before anything starts."""
    validate_common(settings)
    if settings.pull_policy not in PULL_POLICIES:
        raise LabcapError(
            f"pull policy {settings.pull_policy!r}: use one of {', '.join(PULL_POLICIES)}"
        )
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
    backend = KubernetesProbe(settings, target, new_run_id())
    return run_probe(backend, settings, out, overwrite=overwrite, progress=progress)


class KubernetesProbe:
    """The probe's Kubernetes back-end: pods in a throw-away namespace, hostNetwork."""

    traits = TRAITS

    def __init__(self, settings: K8sProbeSettings, target: KubeTarget, run_id: str) -> None:
        from kubernetes import client

        self.settings = settings
        self.target = target
        self.run_id = run_id
        self.namespace = f"{NAMESPACE_PREFIX}{run_id}"
        self.core = client.CoreV1Api(target.api_client)
        self.collector = KubernetesCollector(
            KubernetesSettings(
                namespaces=(self.namespace,),
                selector=f"{PROBE_LABEL}={run_id}",
                pending_threshold_s=settings.timeout_s,
            ),
            api_client=target.api_client,
        )

    def manifest_parts(self) -> ManifestParts:
        target = self.target
        return ManifestParts(
            scenario={"pull_policy": self.settings.pull_policy},
            hosts={"kubernetes": target.server},
            sections={
                "kubernetes": {
                    "server": target.server,
                    "context": target.context,
                    "version": target.version,
                    "namespace": self.namespace,
                },
                "clocks": COLUMN_CLOCKS,
            },
            note=(
                "each step creates its concurrency's pods at once, repeat times, in a "
                "throw-away namespace; phase times are labcap's clock when the change arrived "
                "on the watch, seconds after the pod first appeared there (*_cond_s: the API "
                "server's 1 s condition timestamps)"
            ),
            probe={"namespace": self.namespace},
        )

    def start(self, ctx: RunContext) -> None:
        pass  # the collector watches the namespace: it starts once that exists (prepare)

    def prepare(self, ctx: RunContext, progress: Progress) -> None:
        self._create_namespace()
        self.collector.start(ctx)
        if not self.collector.status().available:
            raise SourceLost(f"kubernetes: {self.collector.status().reason}")
        self._wait_for_service_account()

    def _create_namespace(self) -> None:
        body = {
            "metadata": {
                "name": self.namespace,
                "labels": {MANAGED_BY: "labcap", PROBE_LABEL: self.run_id},
            }
        }
        try:
            self.core.create_namespace(body, _request_timeout=(5, 30))
        except Exception as e:
            why = f"could not create namespace {self.namespace}: {_api_short(e)}"
            raise SourceLost(why) from None

    def _wait_for_service_account(self) -> None:
        """Pods created before the default ServiceAccount (and its token, before 1.24) fail."""
        needs_secret = _server_minor(self.target.version) < 24
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                sa = self.core.read_namespaced_service_account(
                    "default", self.namespace, _request_timeout=(5, 10)
                )
                if not needs_secret or sa.secrets:
                    return
            time.sleep(0.2)
        raise SourceLost(
            f"the default ServiceAccount of {self.namespace} got no token within 60 s "
            "(is kube-controller-manager running?)"
        )

    def creator(self, step_index: int, round_index: int, n: int) -> Callable[[int], Attempt]:
        round_key = f"{step_index}-{round_index}"

        def create(k: int) -> Attempt:
            name = f"probe-{step_index}-{round_index}-{k}"
            return self._create_pod(name, round_key, step_index)

        return create

    def _pod_body(self, name: str, round_key: str) -> dict:
        settings = self.settings
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
        labels = {PROBE_LABEL: self.run_id, ROUND_LABEL: round_key, MANAGED_BY: "labcap"}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "hostNetwork": True,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "enableServiceLinks": False,
                "containers": [container],
            },
        }

    def _create_pod(self, name: str, round_key: str, step_index: int) -> Attempt:
        body = self._pod_body(name, round_key)
        requested = self.collector.now()
        try:
            resp = self.core.create_namespaced_pod(
                self.namespace, body, _preload_content=False, _request_timeout=(5, 60)
            )
            uid = json.loads(resp.data)["metadata"]["uid"]
        except Exception as e:
            lost = "" if getattr(e, "status", None) else describe_api_problem(e, "?")
            why = _api_short(e)
            return Attempt(step_index, name, requested, None, None, "create-failed", why, lost)
        call_s = self.collector.now() - requested
        self.collector.note_requested(uid, requested, name, self.namespace)
        return Attempt(step_index, name, requested, call_s, uid)

    def remove(self, step_index: int, round_index: int, ids: list[str]) -> None:
        """Delete the round's pods and wait (bounded) until the watch saw them go."""
        if not ids:
            return
        selector = f"{PROBE_LABEL}={self.run_id},{ROUND_LABEL}={step_index}-{round_index}"
        with contextlib.suppress(Exception):  # the namespace deletion sweeps up what remains
            self.core.delete_collection_namespaced_pod(
                self.namespace,
                label_selector=selector,
                grace_period_seconds=0,
                _request_timeout=(5, 60),
            )
            deadline = time.monotonic() + 60
            while len(self.collector.gone(ids)) < len(ids) and time.monotonic() < deadline:
                if self.collector.api_lost:
                    break
                time.sleep(0.05)

    def lost(self) -> bool:
        return self.collector.api_lost

    def lost_after(self, last: Round) -> str:
        lost = [a.lost for a in last.attempts if a.lost]
        if lost or self.collector.api_lost:
            why = lost[0] if lost else "the watch lost it"
            return f"lost the Kubernetes API server during step {last.step_index + 1}: {why}"
        return ""

    def cleanup(self, progress: Progress) -> str:
        """Delete the probe's namespace; a reason if that failed."""
        namespace = self.namespace
        try:
            self.core.delete_namespace(namespace, grace_period_seconds=0, _request_timeout=(5, 30))
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
                self.core.read_namespace(namespace, _request_timeout=(5, 10))
            except Exception as e:
                if getattr(e, "status", None) == 404:
                    return ""
            time.sleep(0.5)
        progress(f"namespace {namespace} is still terminating; Kubernetes finishes it")
        return ""

    def late_reasons(self, reasons: list[str]) -> list[str]:
        """The watch's gaps, unless the API server was lost (which says it all)."""
        if any(r.startswith("lost the Kubernetes") for r in reasons):
            return []
        return [f"collector kubernetes: {w}" for w in self.collector.status().warnings][:10]

    def probe_extra(self) -> dict[str, Any]:
        return {"watch_resumes": self.collector.watch_resumes}

    def startup_table(self, records: Any, levels: tuple[int, ...]) -> tuple[K8sStartupRow, ...]:
        return startup_table(records, levels)


def _server_minor(version: str) -> int:
    m = re.match(r"v?(\d+)\.(\d+)", version or "")
    return int(m.group(2)) if m and m.group(1) == "1" else 99


def _api_short(e: BaseException) -> str:
    status = getattr(e, "status", None)
    if status:
        body = getattr(e, "body", None) or ""
        with contextlib.suppress(Exception):
            body = json.loads(body).get("message", body)
        return f"{status} {getattr(e, 'reason', '')}: {str(body)[:200]}".strip()
    return describe_api_problem(e, "?").replace(" at ?", "")


def startup_table(records: Any, levels: tuple[int, ...]) -> tuple[K8sStartupRow, ...]:
    """Per concurrency level: how many pods became Ready, and phase percentiles in ms."""
    return tuple(
        K8sStartupRow(
            **{f.name: getattr(row, f.name) for f in fields(row)},
            phases=_phase_quantiles(step_records(records, row.step_index)),
        )
        for row in base_startup_table(records, levels)
    )


def _phase_quantiles(recs: Any) -> dict[str, dict[str, float | None]]:
    """p50/p95/p99/max (ms) of each phase some pod of the level passed (ready: Ready ones)."""
    ok = recs[recs["outcome"] == "ready"]
    phases: dict[str, dict[str, float | None]] = {}
    for phase in ("create_call", "pulled") + K8S_PHASES:
        col = "create_call_s" if phase == "create_call" else f"{phase}_s"
        frame = ok if phase == "ready" else recs
        if not frame[col].notna().any():
            continue
        phases[phase] = {f"p{p}_ms": quantile_ms(frame, col, p) for p in (50, 95, 99)}
        phases[phase]["max_ms"] = quantile_ms(frame, col, 100)
    return phases


def format_table(rows: tuple[K8sStartupRow, ...]) -> str:
    """p50/p95/p99/max per phase versus concurrency (ms after the pod appeared on the watch)."""
    ms = format_ms
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
        if bad := not_ready_line(r):
            lines.append(bad)
    return "\n".join(lines)


__all__ = [
    "K8sProbeSettings",
    "K8sStartupRow",
    "KubernetesProbe",
    "NAMESPACE_PREFIX",
    "format_table",
    "run_k8s_startup_probe",
    "startup_table",
    "validate",
]
