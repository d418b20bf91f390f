"""Kubernetes / K3s: pod startup phases, scheduling conflicts and node inventory.

Only APIs that Kubernetes 1.20 and current K3s both serve are used: core/v1
pods, events, nodes, namespaces and service accounts.

Threads, so a slow API server never stalls the load:

* one **pod watch** per namespace (or one for all namespaces): *list, then
  watch from the list's resourceVersion*. A watch that ends (server-side
  timeout) resumes from the last resourceVersion; one that expires (410 Gone)
  or loses the server re-lists, and since every pod is keyed by its UID and
  every transition is kept only the first time it is seen, nothing is lost
  or counted twice. Transitions first seen on such a re-list are flagged
  (``watch_gap``): their watch-clock figures are upper bounds.
* one **event watch** per namespace (same list/watch/re-list), for image
  pulls (Pulling/Pulled), FailedScheduling with its reasons, evictions and
  pull failures. Events are keyed by their UID and count.
* a **housekeeping** thread: pods Pending longer than a threshold, and the
  node inventory (allocatable versus requested CPU, memory, GPUs, MIG slices).

Two clocks, named in :data:`COLUMN_CLOCKS` and written into every run:
the condition timestamps (``*_cond_s``) are the API server's, with one-second
resolution; the phase columns shared with the Docker collector (``ready_s``,
``running_s`` ...) and ``scheduled_s``/``initialized_s``/``containers_ready_s``
are labcap's own clock when the change arrived on the watch (monotonic
differences, anchored to the wall clock once), as ClusterLoader2 measures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.clients.kube import connect, describe_api_problem
from labcap.collectors.base import CollectorStatus, RunContext, StartupRecord
from labcap.errors import LabcapError
from labcap.redact import redact_url, scrub
from labcap.store import atomic_write_json

DEFAULT_SELECTOR = "component=singleuser-server"  # KubeSpawner's user pods
MANAGED_BY = "app.kubernetes.io/managed-by"
CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
# Outcomes beyond the Docker collector's: the scheduler refused the pod, or it was evicted.
K8S_OUTCOMES = (
    "ready",
    "exited",
    "timeout",
    "pull-failed",
    "create-failed",
    "unschedulable",
    "evicted",
    "deleted",
)
PULL_FAILURES = (
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "ImageInspectError",
    "RegistryUnavailable",
)
GPU_RESOURCE = "nvidia.com/gpu"

COLUMN_CLOCKS = {
    "t_unix": "labcap wall clock when the pod was first seen on the watch "
    "(time.time() anchored to time.monotonic() at collector start)",
    "*_s (requested, pull_started, pulled, created, scheduled, initialized, started, "
    "running, containers_ready, ready, exited)": "labcap's monotonic clock when the "
    "change arrived on the watch, seconds after t_unix (sub-millisecond resolution)",
    "creation_unix": "the API server's creationTimestamp (1 s resolution)",
    "*_cond_s (scheduled, initialized, containers_ready, ready, running)": "the API "
    "server's condition lastTransitionTime / container startedAt, seconds after "
    "creation_unix (1 s resolution)",
    "pulled_event_s": "the kubelet's Pulled event timestamp, seconds after creation_unix",
}


@dataclass(frozen=True)
class KubernetesSettings:
    kubeconfig: str | None = field(
        default=None, metadata={"help": "Kubeconfig file [default: $KUBECONFIG, ~/.kube/config, "
                                        "then K3s's /etc/rancher/k3s/k3s.yaml]."}
    )  # fmt: skip
    context: str | None = field(default=None, metadata={"help": "Kubeconfig context."})
    namespaces: tuple[str, ...] = field(
        default=("default",), metadata={"help": "Namespaces to watch; empty: all of them."}
    )
    selector: str = field(
        default=DEFAULT_SELECTOR,
        metadata={"help": "Label selector of the pods to follow (KubeSpawner's user pods)."},
    )
    pending_threshold_s: float = field(
        default=60.0, metadata={"help": "A pod Pending longer than this is a conflict."}
    )
    inventory_interval_s: float = field(
        default=10.0, metadata={"help": "Seconds between node inventory samples."}
    )
    watch_timeout_s: int = field(
        default=300, metadata={"help": "Server-side watch timeout; the watch then resumes."}
    )


@dataclass(frozen=True)
class PodStartupRecord(StartupRecord):
    """The Docker collector's columns, in its order, then what only Kubernetes has.

    ``container_id`` is the pod UID, ``container`` the pod name, ``project``
    its namespace; ``healthy_s`` and ``http_ready_s`` stay NaN (readiness is
    the pod's Ready condition).
    """

    namespace: str = ""
    node: str = ""
    image_pull: str = ""  # pulled | present (the kubelet found it on the node) | ""
    pull_started_s: float = math.nan
    scheduled_s: float = math.nan
    initialized_s: float = math.nan
    containers_ready_s: float = math.nan
    watch_gap: bool = False
    creation_unix: float = math.nan
    scheduled_cond_s: float = math.nan
    initialized_cond_s: float = math.nan
    containers_ready_cond_s: float = math.nan
    ready_cond_s: float = math.nan
    running_cond_s: float = math.nan
    pulled_event_s: float = math.nan


@dataclass(frozen=True)
class ConflictRecord:
    """A scheduling conflict or a pod in trouble: FailedScheduling, Pending too long, ..."""

    t_unix: float  # labcap clock when seen (event time when it predates the watch)
    kind: str  # failed-scheduling | pending | evicted | oom-killed | restart | image | pod-setup
    namespace: str
    pod: str
    pod_uid: str
    node: str
    reason: str
    message: str
    resources: str  # insufficient resources named, comma separated (cpu,nvidia.com/gpu)
    count: int
    source: str  # event | pod-status


@dataclass(frozen=True)
class NodeSample:
    t_unix: float
    node: str
    ready: bool
    cpu_allocatable_m: int
    cpu_requested_m: int
    mem_allocatable_bytes: int
    mem_requested_bytes: int
    gpu_allocatable: int  # nvidia.com/gpu
    gpu_requested: int
    pods_allocatable: int
    pods: int
    extended: str  # JSON: {resource: [allocatable, requested]} for nvidia.com/* (MIG slices)


NAN = math.nan

# --- connecting -----------------------------------------------------------------------------


# --- parsing --------------------------------------------------------------------------------


def parse_k8s_time(text: str | None) -> float | None:
    """RFC 3339 (``2026-01-01T10:00:00Z``, optionally with fractions) -> seconds since epoch."""
    if not text:
        return None
    with contextlib.suppress(ValueError):
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return None


_INSUFFICIENT = re.compile(r"Insufficient ([A-Za-z0-9_./-]+)")


def insufficient_resources(message: str) -> tuple[str, ...]:
    """``0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient nvidia.com/gpu.``"""
    return tuple(sorted({m.rstrip(".,") for m in _INSUFFICIENT.findall(message or "")}))


def _quantity(value: Any) -> float:
    if value in (None, ""):
        return 0.0
    from kubernetes.utils import parse_quantity

    try:
        return float(parse_quantity(str(value)))
    except Exception:
        return 0.0


def pod_requests(spec: dict[str, Any]) -> dict[str, float]:
    """What the scheduler counts: max(sum of containers, largest init container) + overhead."""
    total: dict[str, float] = {}
    for c in spec.get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = total.get(k, 0.0) + _quantity(v)
    for c in spec.get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = max(total.get(k, 0.0), _quantity(v))
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0.0) + _quantity(v)
    return total


def node_inventory(
    nodes: list[dict[str, Any]], pods: list[dict[str, Any]], t: float
) -> list[NodeSample]:
    """Allocatable versus requested resources per node, from a node and a pod list."""
    requested: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if not node or (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        counts[node] = counts.get(node, 0) + 1
        acc = requested.setdefault(node, {})
        for k, v in pod_requests(p.get("spec") or {}).items():
            acc[k] = acc.get(k, 0.0) + v
    out = []
    for n in nodes:
        name = (n.get("metadata") or {}).get("name", "")
        status = n.get("status") or {}
        alloc = {k: _quantity(v) for k, v in (status.get("allocatable") or {}).items()}
        req = requested.get(name, {})
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        extended = {
            k: [alloc.get(k, 0.0), req.get(k, 0.0)]
            for k in sorted(set(alloc) | set(req))
            if k.startswith("nvidia.com/")
        }
        out.append(
            NodeSample(
                t_unix=round(t, 6),
                node=name,
                ready=ready,
                cpu_allocatable_m=round(alloc.get("cpu", 0.0) * 1000),
                cpu_requested_m=round(req.get("cpu", 0.0) * 1000),
                mem_allocatable_bytes=int(alloc.get("memory", 0.0)),
                mem_requested_bytes=int(req.get("memory", 0.0)),
                gpu_allocatable=int(alloc.get(GPU_RESOURCE, 0.0)),
                gpu_requested=int(req.get(GPU_RESOURCE, 0.0)),
                pods_allocatable=int(alloc.get("pods", 0.0)),
                pods=counts.get(name, 0),
                extended=json.dumps(extended, sort_keys=True),
            )
        )
    return out


# --- per-pod state --------------------------------------------------------------------------


@dataclass
class _Pod:
    """Mutable, per pod UID; every transition is kept the first time it is seen."""

    uid: str
    name: str
    namespace: str
    first_seen: float  # labcap wall clock (monotonic-anchored)
    origin: str  # created | listed | relisted
    image: str = ""
    service: str = ""
    node: str = ""
    creation_unix: float | None = None
    requested_unix: float | None = None
    seen: dict[str, float] = field(default_factory=dict)  # phase -> labcap clock
    cond: dict[str, float] = field(default_factory=dict)  # phase -> API server clock
    gap: bool = False
    image_pull: str = ""
    pulled_event_unix: float | None = None
    unschedulable: str = ""
    resources: tuple[str, ...] = ()
    pull_failure: str = ""
    evicted: str = ""
    exit_code: int | None = None
    terminated_reason: str = ""
    oom_killed: bool = False
    restarts: int = 0
    deleted: bool = False
    pending_flagged: bool = False
    frozen_outcome: str | None = None
    frozen_reason: str = ""

    def terminal(self) -> bool:
        """Ready, or never will be on its own (failed pull of a local image, exited, gone)."""
        return (
            "ready" in self.seen
            or bool(self.pull_failure)
            or bool(self.evicted)
            or "exited" in self.seen
            or self.deleted
            or self.frozen_outcome is not None
        )


class _Gone(Exception):
    """The watch's resourceVersion expired (410 Gone): re-list."""


class KubernetesCollector:
    """Pod startup phases, conflicts and node inventory from a Kubernetes API server."""

    name = "kubernetes"

    def __init__(
        self, settings: KubernetesSettings | None = None, api_client: Any | None = None
    ) -> None:
        self.settings = settings or KubernetesSettings()
        self._api = api_client
        self._server = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pods: dict[str, _Pod] = {}
        self._events: dict[str, dict[str, Any]] = {}  # event uid -> what we kept
        self._conflicts: dict[tuple[str, ...], ConflictRecord] = {}
        self._event_counts: dict[tuple[str, ...], dict[str, int]] = {}
        self._nodes: list[NodeSample] = []
        self._warnings: list[str] = []
        self._available = False
        self._reason = ""
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}
        self._expiring: set[str] = set()
        self._lost_since: float | None = None
        self._lost_streams: set[str] = set()
        self.watch_resumes = 0  # 410 Gone answered by a re-list (normal, not a gap)
        self.watch_restarts = 0  # watches that ended (server-side timeout) and resumed
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._started = False

    # -- protocol ---------------------------------------------------------------------------

    def start(self, ctx: RunContext | None = None) -> None:
        """Connect, list, start watching; never raises (unavailable with a reason instead)."""
        self._mono0, self._wall0 = time.monotonic(), time.time()
        try:
            if self._api is None:
                target = connect(self.settings.kubeconfig, self.settings.context)
                self._api, self._server = target.api_client, target.server
            else:
                self._server = redact_url(self._api.configuration.host)
            from kubernetes import client

            self._core = client.CoreV1Api(self._api)
            streams = self._initial_lists()
        except LabcapError as e:
            self._reason = str(e)
            return
        except Exception as e:
            self._reason = describe_api_problem(e, self._server or "?")
            return
        self._available = True
        self._started = True
        if ctx is not None:
            self._describe(ctx.run_dir)
        for key, (resource, ns, rv) in streams.items():
            t = threading.Thread(
                target=self._watch_loop,
                args=(key, resource, ns, rv),
                name=f"labcap-k8s-{key}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._housekeeping, name="labcap-k8s-house", daemon=True)
        t.start()
        self._threads.append(t)

    def _describe(self, run_dir: Path) -> None:
        """kubernetes.json in the run directory: what was watched and which clock is which."""

        s = self.settings
        with contextlib.suppress(OSError):
            atomic_write_json(
                Path(run_dir) / "kubernetes.json",
                {
                    "server": self._server,
                    "namespaces": list(s.namespaces) or ["*"],
                    "selector": s.selector,
                    "pending_threshold_s": s.pending_threshold_s,
                    "clocks": COLUMN_CLOCKS,
                    "tables": ["startup_records", "scheduling_conflicts", "node_inventory"],
                },
            )

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for resp in list(self._responses.values()):
            _shutdown(resp)
        for t in self._threads:
            t.join(timeout=10)
        if self._available and self._lost_since is None:
            with contextlib.suppress(Exception):
                self._sample_nodes()
        with self._lock:
            for p in self._pods.values():
                if not p.terminal():
                    p.frozen_outcome, p.frozen_reason = "timeout", "not ready when sampling stopped"

    def status(self) -> CollectorStatus:
        return CollectorStatus(self.name, self._available, self._reason, tuple(self._warnings[:20]))

    def tables(self) -> dict[str, Any]:
        import pandas as pd

        recs = self.startup_records()
        with self._lock:
            uids = set(self._pods)
            conflicts = [c for c in self._conflicts.values() if c.pod_uid in uids]
            nodes = list(self._nodes)
        conflicts.sort(key=lambda c: c.t_unix)
        return {
            "startup_records": _frame(pd, recs, PodStartupRecord),
            "scheduling_conflicts": _frame(pd, conflicts, ConflictRecord),
            "node_inventory": _frame(pd, nodes, NodeSample),
        }

    # -- what probes and tests use -----------------------------------------------------------

    def now(self) -> float:
        """labcap's clock: wall time anchored once, advanced by the monotonic clock."""
        return self._wall0 + (time.monotonic() - self._mono0)

    @property
    def api_lost(self) -> bool:
        return self._lost_since is not None

    def note_requested(self, uid: str, requested_unix: float, name: str, namespace: str) -> None:
        """The create call for this pod was sent at ``requested_unix`` (labcap clock)."""
        with self._lock:
            p = self._pods.get(uid)
            if p is None:  # the watch has not delivered it yet
                p = self._pods[uid] = _Pod(uid, name, namespace, NAN, "pending")
            p.requested_unix = requested_unix

    def terminal(self, uids: list[str]) -> set[str]:
        with self._lock:
            return {
                u for u in uids if u in self._pods and self._pods[u].origin != "pending"
                and self._pods[u].terminal()
            }  # fmt: skip

    def gone(self, uids: list[str]) -> set[str]:
        with self._lock:
            return {u for u in uids if u in self._pods and self._pods[u].deleted}

    def give_up(self, uids: list[str], reason: str) -> None:
        """Fix the outcome of pods that are not ready yet (before deleting them)."""
        with self._lock:
            for u in uids:
                p = self._pods.get(u)
                if p is not None and not p.terminal():
                    p.frozen_outcome, p.frozen_reason = "timeout", reason
                if p is not None and p.frozen_outcome is None:
                    p.frozen_outcome = "settled"

    def expire_watches(self) -> None:
        """Force every watch to expire: each resumes from resourceVersion 1, which the
        server answers with 410 Gone, so the collector must re-list (tests use it)."""
        with self._lock:
            self._expiring = set(self._stream_keys())
            responses = list(self._responses.values())
        for resp in responses:
            _shutdown(resp)

    def startup_records(self) -> list[PodStartupRecord]:
        with self._lock:
            pods = [p for p in self._pods.values() if p.origin != "pending"]
            events = dict(self._events)
        by_pod: dict[str, list[dict[str, Any]]] = {}
        for ev in events.values():
            by_pod.setdefault(ev["uid"], []).append(ev)
        out = [_record(p, by_pod.get(p.uid, [])) for p in pods]
        return sorted(out, key=lambda r: (r.t_unix, r.container))

    # -- list and watch ---------------------------------------------------------------------

    def _stream_keys(self) -> dict[str, tuple[str, str | None]]:
        namespaces: tuple[str | None, ...] = self.settings.namespaces or (None,)
        keys = {}
        for ns in namespaces:
            for resource in ("pods", "events"):
                keys[f"{resource}@{ns or '*'}"] = (resource, ns)
        return keys

    def _initial_lists(self) -> dict[str, tuple[str, str | None, str]]:
        streams = {}
        for key, (resource, ns) in self._stream_keys().items():
            rv = self._list(resource, ns, "list")
            streams[key] = (resource, ns, rv)
        self._sample_nodes()
        return streams

    def _call(self, resource: str, namespace: str | None, **kw: Any) -> Any:
        if resource == "pods":
            if self.settings.selector:
                kw["label_selector"] = self.settings.selector
            fn = (
                self._core.list_namespaced_pod
                if namespace
                else self._core.list_pod_for_all_namespaces
            )
        else:
            kw["field_selector"] = "involvedObject.kind=Pod"
            fn = (
                self._core.list_namespaced_event
                if namespace
                else self._core.list_event_for_all_namespaces
            )
        args = (namespace,) if namespace else ()
        return fn(*args, _preload_content=False, **kw)

    def _list(self, resource: str, namespace: str | None, via: str) -> str:
        """List everything (paged) and observe it; returns the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        cont: str | None = None
        rv = ""
        for _ in range(10_000):
            kw: dict[str, Any] = {"limit": 500, "_request_timeout": (5, 60)}
            if cont:
                kw["_continue"] = cont
            data = json.loads(self._call(resource, namespace, **kw).data)
            meta = data.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            items.extend(data.get("items") or [])
            cont = meta.get("continue")
            if not cont:
                break
        if resource == "pods":
            self._reconcile(items, namespace, via)
        else:
            for ev in items:
                self._on_event(ev, via)
        return rv

    def _reconcile(self, items: list[dict[str, Any]], namespace: str | None, via: str) -> None:
        present = set()
        for obj in items:
            present.add((obj.get("metadata") or {}).get("uid"))
            self._on_pod("ADDED", obj, via)
        if via != "relist":
            return
        with self._lock:  # deleted while we were not watching
            for p in self._pods.values():
                in_scope = namespace is None or p.namespace == namespace
                if in_scope and p.origin != "pending" and p.uid not in present and not p.deleted:
                    p.deleted = True
                    p.seen.setdefault("deleted", self.now())
                    p.gap = True

    def _watch_loop(self, key: str, resource: str, namespace: str | None, rv: str) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list(resource, namespace, "relist")
                    self._note_back(key)
                    backoff = 0.2
                with self._lock:
                    stale = key in self._expiring
                    self._expiring.discard(key)
                rv = self._watch_once(key, resource, namespace, "1" if stale else rv, rv)
                self.watch_restarts += 1
            except _Gone:
                self.watch_resumes += 1
                rv = ""  # re-list: the gap is covered by the fresh list
            except Exception as e:
                if self._stop.is_set():
                    return
                if getattr(e, "status", None) == 410:
                    self.watch_resumes += 1
                    rv = ""
                    continue
                with self._lock:
                    forced = key in self._expiring  # we closed it: not a lost server
                if forced:
                    continue
                self._note_lost(key, e)
                rv = ""  # once it answers again, re-list: events of the gap may be gone
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _watch_once(
        self, key: str, resource: str, namespace: str | None, rv: str, last: str
    ) -> str:
        from kubernetes.watch.watch import iter_resp_lines

        timeout = self.settings.watch_timeout_s
        resp = self._call(
            resource,
            namespace,
            watch=True,
            resource_version=rv,
            timeout_seconds=timeout,
            allow_watch_bookmarks=True,
            _request_timeout=(5, timeout + 30),
        )
        self._responses[key] = resp
        self._note_back(key)
        try:
            for line in iter_resp_lines(resp):
                if self._stop.is_set():
                    break
                if not line:
                    continue
                ev = json.loads(line)
                obj = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone(obj.get("message", "410 Gone"))
                    raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                last = str((obj.get("metadata") or {}).get("resourceVersion") or last)
                if ev.get("type") == "BOOKMARK":
                    continue
                if resource == "pods":
                    self._on_pod(ev.get("type", ""), obj, "watch")
                else:
                    self._on_event(obj, "watch")
        finally:
            self._responses.pop(key, None)
            with contextlib.suppress(Exception):
                resp.release_conn()
        return last

    def _note_lost(self, key: str, exc: BaseException) -> None:
        with self._lock:
            self._lost_streams.add(key)
            if self._lost_since is not None:
                return
            self._lost_since = time.time()
        at = time.strftime("%H:%M:%S", time.localtime(self._lost_since))
        why = describe_api_problem(exc, self._server)
        self._warnings.append(f"lost the Kubernetes API server at {at}: {why}; reconnecting")

    def _note_back(self, key: str) -> None:
        with self._lock:
            self._lost_streams.discard(key)
            if self._lost_since is None or self._lost_streams:
                return
            gap = time.time() - self._lost_since
            self._lost_since = None
        self._warnings.append(
            f"the Kubernetes API server answered again after {gap:.1f} s; pods and events "
            "were re-listed (transitions of the gap carry watch_gap)"
        )

    # -- pods -------------------------------------------------------------------------------

    def _on_pod(self, kind: str, obj: dict[str, Any], via: str) -> None:
        now = self.now()
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return
        with self._lock:
            p = self._pods.get(uid)
            if p is None or p.origin == "pending":
                origin = {"watch": "created", "list": "listed"}.get(via, "relisted")
                if via == "list" and _pod_ready(status):
                    return  # ready before we started: not a startup we saw
                req = p.requested_unix if p else None
                p = self._pods[uid] = _Pod(
                    uid, str(meta.get("name", "")), str(meta.get("namespace", "")), now, origin
                )
                p.requested_unix = req
                p.gap = via == "relist"
                labels = meta.get("labels") or {}
                p.service = labels.get("component") or labels.get("app.kubernetes.io/component", "")
                containers = spec.get("containers") or [{}]
                p.image = str(containers[0].get("image", ""))
                p.creation_unix = parse_k8s_time(meta.get("creationTimestamp"))
                if origin == "created":
                    p.seen["created"] = now
            self._update_pod(p, kind, spec, status, now, via)

    def _update_pod(
        self, p: _Pod, kind: str, spec: dict, status: dict, now: float, via: str
    ) -> None:
        def seen(phase: str) -> None:
            if phase not in p.seen:
                p.seen[phase] = now
                if via != "watch":
                    p.gap = True

        p.node = spec.get("nodeName") or p.node
        for c in status.get("conditions") or []:
            ctype = c.get("type")
            if ctype not in CONDITIONS:
                continue
            phase = _PHASE_OF[ctype]
            if c.get("status") == "True":
                seen(phase)
                ts = parse_k8s_time(c.get("lastTransitionTime"))
                if ts is not None:
                    p.cond.setdefault(phase, ts)
            elif ctype == "PodScheduled" and c.get("reason") == "Unschedulable":
                p.unschedulable = str(c.get("message") or "Unschedulable")
                p.resources = insufficient_resources(p.unschedulable) or p.resources
        statuses = status.get("containerStatuses") or []
        running = [s for s in statuses if (s.get("state") or {}).get("running")]
        if running:
            seen("started")
            starts = [parse_k8s_time(s["state"]["running"].get("startedAt")) for s in running]
            if len(running) == len(statuses) and len(statuses) == len(spec.get("containers") or []):
                seen("running")
                valid = [s for s in starts if s is not None]
                if valid:
                    p.cond.setdefault("running", max(valid))
        restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
        for s in statuses:
            state, last = s.get("state") or {}, s.get("lastState") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in PULL_FAILURES and not p.pull_failure:
                p.pull_failure = f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
                self._conflict("image", p, waiting["reason"], waiting.get("message", ""), now)
            for term in (state.get("terminated"), last.get("terminated")):
                if term and term.get("reason") == "OOMKilled" and not p.oom_killed:
                    p.oom_killed = True
                    self._conflict("oom-killed", p, "OOMKilled", s.get("name", ""), now)
            term = state.get("terminated")
            if term and p.exit_code is None and spec.get("restartPolicy") == "Never":
                p.exit_code = int(term.get("exitCode") or 0)
                p.terminated_reason = str(term.get("reason") or "")
                seen("exited")
        if restarts > p.restarts:
            p.restarts = restarts
            self._conflict("restart", p, "Restarted", f"{restarts} restarts", now, restarts)
        if status.get("phase") in ("Failed", "Succeeded"):
            seen("exited")
            if status.get("reason") == "Evicted" and not p.evicted:
                p.evicted = str(status.get("message") or "Evicted")
                self._conflict("evicted", p, "Evicted", p.evicted, now)
        if kind == "DELETED":
            p.deleted = True
            seen("deleted")

    def _conflict(
        self, kind: str, p: _Pod, reason: str, message: str, t: float, count: int = 1
    ) -> None:
        """Under the lock: one row per pod, kind and count."""
        key = (kind, p.uid, "status", str(count))
        self._conflicts.setdefault(
            key,
            ConflictRecord(
                round(t, 6), kind, p.namespace, p.name, p.uid, p.node, reason,
                scrub(message)[:500], ",".join(insufficient_resources(message)), count,
                "pod-status",
            ),
        )  # fmt: skip

    # -- events -----------------------------------------------------------------------------

    def _on_event(self, ev: dict[str, Any], via: str) -> None:
        meta = ev.get("metadata") or {}
        obj = ev.get("involvedObject") or {}
        uid, pod_uid = str(meta.get("uid") or ""), str(obj.get("uid") or "")
        if not uid or not pod_uid:
            return
        reason = str(ev.get("reason") or "")
        message = str(ev.get("message") or "")
        count = int(ev.get("count") or (ev.get("series") or {}).get("count") or 1)
        ts = parse_k8s_time(ev.get("eventTime") or ev.get("lastTimestamp")) or parse_k8s_time(
            ev.get("firstTimestamp")
        )
        now = self.now()
        observed = now if via != "list" else None
        with self._lock:
            kept = self._events.get(uid)
            if kept is not None and kept["count"] >= count:
                return  # the same occurrence, seen again on a re-list
            self._events[uid] = {
                "uid": pod_uid,
                "reason": reason,
                "message": message,
                "count": count,
                "event_unix": ts,
                "observed": kept["observed"] if kept else observed,
                "gap": via == "relist",
            }
            kind = _EVENT_KINDS.get(reason)
            if reason == "Failed" and ("image" in message.lower() or "ErrImage" in message):
                kind = "image"
            if kind is None:
                return
            # one row per pod, kind, reason and message: the scheduler's retries add up
            key = (kind, pod_uid, "event", reason, message)
            counts = self._event_counts.setdefault(key, {})
            counts[uid] = count
            first = self._conflicts.get(key)
            t = first.t_unix if first else (observed if observed is not None else (ts or now))
            self._conflicts[key] = ConflictRecord(
                round(t, 6), kind, str(obj.get("namespace") or meta.get("namespace") or ""),
                str(obj.get("name") or ""), pod_uid, "", reason, scrub(message)[:500],
                ",".join(insufficient_resources(message)), sum(counts.values()), "event",
            )  # fmt: skip
            p = self._pods.get(pod_uid)
            if p is not None and reason == "FailedScheduling" and not p.unschedulable:
                p.unschedulable = message
                p.resources = insufficient_resources(message)

    # -- housekeeping: Pending too long, node inventory -------------------------------------

    def _housekeeping(self) -> None:
        next_inventory = time.monotonic() + self.settings.inventory_interval_s
        while not self._stop.wait(1.0):
            self._flag_pending()
            if time.monotonic() >= next_inventory and self._lost_since is None:
                next_inventory = time.monotonic() + self.settings.inventory_interval_s
                # the watches report a lost server; a skipped sample is no gap
                with contextlib.suppress(Exception):
                    self._sample_nodes()

    def _flag_pending(self) -> None:
        now = self.now()
        limit = self.settings.pending_threshold_s
        with self._lock:
            for p in self._pods.values():
                if p.origin == "pending" or p.pending_flagged or p.terminal():
                    continue
                if "running" not in p.seen and now - p.first_seen > limit:
                    p.pending_flagged = True
                    why = p.unschedulable or "not running yet"
                    msg = f"pending > {limit:g} s: {why}"
                    self._conflict("pending", p, "PendingTooLong", msg, now)

    def _sample_nodes(self) -> None:
        t = self.now()
        resp = self._core.list_node(_preload_content=False, _request_timeout=(5, 30))
        nodes = json.loads(resp.data)
        try:
            pods = json.loads(
                self._core.list_pod_for_all_namespaces(
                    _preload_content=False,
                    field_selector="status.phase!=Succeeded,status.phase!=Failed",
                    _request_timeout=(5, 60),
                ).data
            )
        except Exception as e:
            if getattr(e, "status", None) != 403:
                raise
            pods = {"items": []}
            note = "node inventory: pods of other namespaces are forbidden; requests undercounted"
            if note not in self._warnings:
                self._warnings.append(note)
        rows = node_inventory(nodes.get("items") or [], pods.get("items") or [], t)
        with self._lock:
            self._nodes.extend(rows)


_PHASE_OF = {
    "PodScheduled": "scheduled",
    "Initialized": "initialized",
    "ContainersReady": "containers_ready",
    "Ready": "ready",
}
_EVENT_KINDS = {
    "FailedScheduling": "failed-scheduling",
    "Evicted": "evicted",
    "Preempted": "evicted",
    "Preempting": "evicted",
    "FailedCreatePodSandBox": "pod-setup",
    "FailedMount": "pod-setup",
    "BackOff": "restart",
    "ErrImageNeverPull": "image",
    "ErrImagePull": "image",
    "InspectFailed": "image",
}


def _pod_ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _shutdown(resp: Any) -> None:
    """Unblock a thread reading a watch response (closing alone may wait on the SSL lock)."""
    import socket

    with contextlib.suppress(Exception):
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        resp.close()


def _frame(pd: Any, rows: list[Any], cls: type) -> Any:
    cols = list(cls.__dataclass_fields__)
    return pd.DataFrame([r.__dict__ for r in rows], columns=cols)


def _record(p: _Pod, events: list[dict[str, Any]]) -> PodStartupRecord:
    origin = p.first_seen
    created = p.creation_unix

    def rel(phase: str) -> float:
        v = p.seen.get(phase)
        return NAN if v is None else round(v - origin, 6)

    def cond(phase: str) -> float:
        v = p.cond.get(phase)
        return NAN if v is None or created is None else round(v - created, 6)

    pulling = [e["observed"] for e in events if e["reason"] == "Pulling" and e["observed"]]
    pulled = [e for e in events if e["reason"] == "Pulled"]
    image_pull = ""
    pulled_s = NAN
    pulled_event = NAN
    if pulled:
        present = all("already present" in e["message"] for e in pulled)
        image_pull = "present" if present else "pulled"
        obs = [e["observed"] for e in pulled if e["observed"]]
        if obs and not present:
            pulled_s = round(max(obs) - origin, 6)
        ts = [e["event_unix"] for e in pulled if e["event_unix"]]
        if ts and created is not None:
            pulled_event = round(max(ts) - created, 6)
    gap = p.gap or any(e["gap"] for e in events)
    outcome, reason = _outcome(p)
    return PodStartupRecord(
        container_id=p.uid,
        container=p.name,
        image=p.image,
        service=p.service,
        project=p.namespace,
        t_unix=round(origin, 6),
        origin=p.origin,
        requested_s=NAN if p.requested_unix is None else round(p.requested_unix - origin, 6),
        pulled_s=pulled_s,
        created_s=rel("created"),
        started_s=rel("started"),
        running_s=rel("running"),
        healthy_s=NAN,
        http_ready_s=NAN,
        ready_s=rel("ready"),
        ready_via="ready-condition",
        exited_s=rel("exited"),
        clock_source="watch",
        outcome=outcome,
        exit_code=NAN if p.exit_code is None else float(p.exit_code),
        oom_killed=p.oom_killed,
        restarts=p.restarts,
        reason=reason,
        namespace=p.namespace,
        node=p.node,
        image_pull=image_pull,
        pull_started_s=round(min(pulling) - origin, 6) if pulling else NAN,
        scheduled_s=rel("scheduled"),
        initialized_s=rel("initialized"),
        containers_ready_s=rel("containers_ready"),
        watch_gap=gap,
        creation_unix=NAN if created is None else created,
        scheduled_cond_s=cond("scheduled"),
        initialized_cond_s=cond("initialized"),
        containers_ready_cond_s=cond("containers_ready"),
        ready_cond_s=cond("ready"),
        running_cond_s=cond("running"),
        pulled_event_s=pulled_event,
    )


def _outcome(p: _Pod) -> tuple[str, str]:
    if "ready" in p.seen:
        return "ready", ""
    if p.evicted:
        return "evicted", p.evicted
    if p.pull_failure:
        return "pull-failed", scrub(p.pull_failure)[:300]
    if p.oom_killed:
        return "exited", "OOM-killed"
    if "exited" in p.seen:
        code = "?" if p.exit_code is None else p.exit_code
        return "exited", f"exited with code {code} {p.terminated_reason}".strip()
    if p.unschedulable:
        return "unschedulable", scrub(p.unschedulable)[:300]
    if p.deleted:
        return "deleted", "deleted before it was ready"
    if p.frozen_outcome in ("timeout",):
        return "timeout", p.frozen_reason
    return "timeout", "not ready yet"


__all__ = [
    "COLUMN_CLOCKS",
    "DEFAULT_SELECTOR",
    "ConflictRecord",
    "KubernetesCollector",
    "KubernetesSettings",
    "NodeSample",
    "PodStartupRecord",
    "insufficient_resources",
    "node_inventory",
    "parse_k8s_time",
    "pod_requests",
]
