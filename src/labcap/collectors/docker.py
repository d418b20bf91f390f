"""Docker Engine: container startup phases from the engine's own events, and resources.

Two threads, so a slow engine never stalls the samples:

* the **event thread** follows the engine's event stream and records, per
  container, when it was created, started, running, healthy and (when asked)
  first answered HTTP, with the engine's nanosecond timestamps (``timeNano``);
  dies, OOM kills and restarts come from the same stream. A lost connection
  (daemon stopped) becomes a warning and a reconnect loop, not a crash.
* the **sampler thread** reads each container's cgroup files (v1 or v2,
  located through ``/proc/<pid>/cgroup``) at a fixed interval. Only when those
  are unreadable (a remote ``DOCKER_HOST``) does it fall back to the engine's
  stats stream, one reader thread per container, never the blocking
  ``stats(stream=False)`` call (about 2 s each).

Which containers: a Compose project (by its ``com.docker.compose.project``
label), ``key=value`` labels, and names such as DockerSpawner's
``jupyter-<user>``; with none of those given, every container.

HTTP readiness is opt-in per container through labels, so a Compose file can
ask for it: ``labcap.http-port=8080`` (and optionally ``labcap.http-path=/health``).
labcap polls ``http://127.0.0.1:<port><path>`` only: containers are expected
on host networking or to publish the port on loopback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import http.client
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.collectors.base import CollectorStatus, RunContext, StartupRecord

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
HTTP_PORT_LABEL = "labcap.http-port"
HTTP_PATH_LABEL = "labcap.http-path"

# Names shared with the Kubernetes collector where the concepts match.
PHASES = ("created", "started", "running", "healthy", "http_ready", "ready")
OUTCOMES = ("ready", "exited", "unhealthy", "timeout", "pull-failed", "create-failed")
_EVENTS = ("create", "start", "die", "oom", "health_status", "destroy", "pull")


@dataclass(frozen=True)
class DockerSettings:
    compose_project: str | None = field(
        default=None, metadata={"help": "Only this Compose project's containers (by label)."}
    )
    labels: tuple[str, ...] = field(
        default=(), metadata={"help": "Only containers carrying every KEY=VALUE label."}
    )
    name_patterns: tuple[str, ...] = field(
        default=("jupyter-*",),
        metadata={"help": "Also containers whose name matches (DockerSpawner's user servers)."},
    )
    interval_s: float = field(default=1.0, metadata={"help": "Seconds between resource samples."})
    http_poll_s: float = field(
        default=0.01, metadata={"help": "Seconds between HTTP readiness attempts."}
    )
    ready_timeout_s: float = field(
        default=600.0, metadata={"help": "Stop polling a container's HTTP port after this."}
    )
    cgroup_root: str = field(
        default="/sys/fs/cgroup", metadata={"help": "Where the cgroup filesystems are mounted."}
    )
    proc_root: str = field(default="/proc", metadata={"help": "The engine host's /proc."})


@dataclass(frozen=True)
class ContainerSample:
    t_unix: float
    container_id: str
    container: str
    service: str
    cpu_pct: float  # of one core, as `docker stats` shows it
    mem_bytes: int  # usage without the inactive page cache, as `docker stats` shows it
    mem_limit_bytes: int  # the host's memory when the container has no limit
    oom_kills: int
    blkio_read_bytes: int
    blkio_write_bytes: int
    restarts: int
    source: str  # cgroup-v1 | cgroup-v2 | stats
    # CFS bandwidth control (a CPU limit, `docker run --cpus`): periods elapsed and periods in
    # which the container was throttled, cumulative; 0 and 0 without a limit
    cpu_periods: int = 0
    cpu_throttled_periods: int = 0
    cpu_limit_cores: float = math.nan  # the CPU limit in cores; NaN: none (or not readable)


NAN = float("nan")


@dataclass
class _Tracked:
    """Mutable, per container, owned by the event thread (read under the lock)."""

    container_id: str
    name: str
    image: str
    labels: dict[str, str]
    origin_ns: int
    origin: str
    created_ns: int | None = None
    requested_unix: float | None = None
    pulled_ns: int | None = None
    started_ns: int | None = None
    running_ns: int | None = None
    healthy_ns: int | None = None
    http_ready_unix: float | None = None
    exited_ns: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    oom_events: int = 0
    unhealthy: bool = False
    has_healthcheck: bool = False
    http_target: tuple[int, str] | None = None
    starts: int = 0
    frozen_outcome: str | None = None
    frozen_reason: str = ""
    reason: str = ""

    @property
    def ready_via(self) -> str:
        if self.http_target:
            return "http"
        return "healthcheck" if self.has_healthcheck else "running"

    def ready_unix(self) -> float | None:
        via = self.ready_via
        if via == "http":
            return self.http_ready_unix
        ns = self.healthy_ns if via == "healthcheck" else self.running_ns
        return None if ns is None else ns / 1e9

    def terminal(self) -> bool:
        """Ready, or never will be (exited, OOM-killed, given up on)."""
        return (
            self.ready_unix() is not None
            or self.exited_ns is not None
            or self.frozen_outcome is not None
        )


_ENGINE_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_engine_time(text: str | None) -> int | None:
    """RFC 3339 with nanoseconds (``2026-01-01T10:00:00.123456789Z``) -> ns since the epoch."""
    m = _ENGINE_TIME.match(text or "")
    if not m or m.group(1).startswith("0001-"):
        return None  # the engine's zero time: never happened
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    whole = dt.datetime.fromisoformat(m.group(1) + tz)
    frac_ns = int(((m.group(2) or "") + "000000000")[:9])
    return int(whole.timestamp()) * 1_000_000_000 + frac_ns


def describe_unavailable(exc: BaseException, where: str) -> str:
    """A one-line reason why the engine cannot be reached."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(x) for x in chain)
    if any(isinstance(x, PermissionError) for x in chain) or "Permission denied" in text:
        return f"permission denied on the Docker socket {where} (join the docker group?)"
    if any(isinstance(x, FileNotFoundError) for x in chain) or "No such file" in text:
        return f"no Docker socket at {where} (is the engine installed and running?)"
    if any(isinstance(x, ConnectionRefusedError) for x in chain) or "refused" in text:
        return f"the Docker engine at {where} refuses connections (daemon down?)"
    return f"the Docker engine at {where} did not answer: {type(exc).__name__}: {exc}"[:300]


def docker_host_description(client: Any | None) -> str:
    if client is not None:
        with contextlib.suppress(Exception):
            return str(client.api.base_url).replace("http+docker://localhost", "unix socket")
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


# --- cgroup files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupPaths:
    version: int
    cpu: Path  # v1: cpuacct dir; v2: the unified dir
    memory: Path
    blkio: Path
    cpu_ctl: Path | None = None  # v1: the cpu controller's dir (throttling); v2: unified


def _cgroup_mounts(proc_root: str) -> dict[str, str]:
    """Controller (or ``unified``) -> mount point, from mountinfo."""
    out: dict[str, str] = {}
    try:
        text = Path(proc_root, "self", "mountinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or not rfields:
            continue
        fstype, mount = rfields[0], fields[4]
        if fstype == "cgroup2":
            out.setdefault("unified", mount)
        elif fstype == "cgroup" and len(rfields) >= 3:
            for opt in rfields[2].split(","):
                if opt in ("cpu", "cpuacct", "memory", "blkio"):
                    out.setdefault(opt, mount)
    return out


def locate_cgroup(
    container_id: str, pid: int | None, settings: DockerSettings
) -> CgroupPaths | None:
    """The container's cgroup directories, or None when they cannot be read here."""
    mounts = _cgroup_mounts(settings.proc_root)
    root = settings.cgroup_root
    own: dict[str, str] = {}
    if pid:
        with contextlib.suppress(OSError):
            for line in Path(settings.proc_root, str(pid), "cgroup").read_text().splitlines():
                _, ctrls, path = line.split(":", 2)
                for c in ctrls.split(",") if ctrls else ["unified"]:
                    own[c] = path
    guesses = [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"]

    def pick(ctrl: str, probe: str) -> Path | None:
        base = mounts.get(ctrl) or (
            os.path.join(root, ctrl) if ctrl != "unified" else _unified_root(root)
        )
        if not base or not base.startswith(root):
            return None
        rels = ([own[ctrl].lstrip("/")] if own.get(ctrl) else []) + guesses
        for rel in rels:
            p = Path(base, rel)
            if os.access(p / probe, os.R_OK):
                return p
        return None

    v1 = [pick("cpuacct", "cpuacct.usage"), pick("memory", "memory.usage_in_bytes")]
    if all(v1):
        blk = pick("blkio", "blkio.throttle.io_service_bytes") or v1[1]
        return CgroupPaths(1, v1[0], v1[1], blk, pick("cpu", "cpu.stat"))  # type: ignore[arg-type]
    unified = pick("unified", "memory.current")
    if unified and (unified / "cpu.stat").exists():
        return CgroupPaths(2, unified, unified, unified, unified)
    return None


def _unified_root(root: str) -> str:
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return root
    return os.path.join(root, "unified")


class CgroupFiles:
    """A container's cgroup files, kept open and re-read with ``pread``.

    Re-reading an open cgroup file regenerates it, so a sample costs one
    syscall per file instead of open/read/close: the sampler stays cheap
    with many containers.
    """

    def __init__(self, paths: CgroupPaths) -> None:
        self.paths = paths
        self._fds: dict[Path, int] = {}

    def read(self, path: Path) -> bytes | None:
        try:
            fd = self._fds.get(path)
            if fd is None:
                fd = self._fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            return os.pread(fd, 65536, 0)
        except OSError:
            return None

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _int(data: bytes | None) -> int | None:
    if data is None:
        return None
    data = data.strip()
    return None if data == b"max" or not data else int(data)


def _key(data: bytes | None, key: bytes) -> int | None:
    """The value of ``key N`` in a flat-keyed cgroup file."""
    if not data:
        return None
    m = re.search(rb"^" + re.escape(key) + rb" (\d+)$", data, re.M)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class _Reading:
    cpu_ns: int
    mem_bytes: int
    mem_limit_bytes: int | None
    oom_kills: int
    read_bytes: int
    write_bytes: int
    periods: int = 0
    throttled: int = 0
    limit_cores: float | None = None


_V1_IO = re.compile(rb"^\S+ (Read|Write) (\d+)$", re.M)
_V2_IO = re.compile(rb"\b([rw])bytes=(\d+)")


def read_cgroup(paths: CgroupPaths, files: CgroupFiles | None = None) -> _Reading | None:
    """One reading of a container's counters; None once the cgroup is gone."""
    own = files is None
    f = files or CgroupFiles(paths)
    try:
        return _read_v1(f) if paths.version == 1 else _read_v2(f)
    finally:
        if own:
            f.close()


def _read_v1(f: CgroupFiles) -> _Reading | None:
    p = f.paths
    cpu = _int(f.read(p.cpu / "cpuacct.usage"))
    usage = _int(f.read(p.memory / "memory.usage_in_bytes"))
    if cpu is None or usage is None:
        return None
    stat = f.read(p.memory / "memory.stat")
    inactive = _key(stat, b"total_inactive_file") or _key(stat, b"inactive_file") or 0
    limit = _int(f.read(p.memory / "memory.limit_in_bytes"))
    if limit is not None and limit >= 2**62:
        limit = None  # "unlimited" is a page-rounded huge number in v1
    oom = _key(f.read(p.memory / "memory.oom_control"), b"oom_kill") or 0
    rd = wr = 0
    for op, value in _V1_IO.findall(f.read(p.blkio / "blkio.throttle.io_service_bytes") or b""):
        if op == b"Read":
            rd += int(value)
        else:
            wr += int(value)
    periods = throttled = 0
    cores = None
    if p.cpu_ctl is not None:
        stat = f.read(p.cpu_ctl / "cpu.stat")
        periods, throttled = _key(stat, b"nr_periods") or 0, _key(stat, b"nr_throttled") or 0
        quota = f.read(p.cpu_ctl / "cpu.cfs_quota_us")
        period = _int(f.read(p.cpu_ctl / "cpu.cfs_period_us"))
        q = int(quota.strip()) if quota and quota.strip().lstrip(b"-").isdigit() else -1
        cores = q / period if q > 0 and period else None
    return _Reading(cpu, max(0, usage - inactive), limit, oom, rd, wr, periods, throttled, cores)


def _read_v2(f: CgroupFiles) -> _Reading | None:
    p = f.paths
    cpu_stat = f.read(p.cpu / "cpu.stat")
    usage_us = _key(cpu_stat, b"usage_usec")
    usage = _int(f.read(p.memory / "memory.current"))
    if usage_us is None or usage is None:
        return None
    inactive = _key(f.read(p.memory / "memory.stat"), b"inactive_file") or 0
    limit = _int(f.read(p.memory / "memory.max"))
    oom = _key(f.read(p.memory / "memory.events"), b"oom_kill") or 0
    rd = wr = 0
    for kind, value in _V2_IO.findall(f.read(p.blkio / "io.stat") or b""):
        if kind == b"r":
            rd += int(value)
        else:
            wr += int(value)
    periods, throttled = _key(cpu_stat, b"nr_periods") or 0, _key(cpu_stat, b"nr_throttled") or 0
    quota, _, period = (f.read(p.cpu / "cpu.max") or b"max").strip().partition(b" ")
    cores = int(quota) / int(period) if quota.isdigit() and period.isdigit() else None
    return _Reading(
        usage_us * 1000, max(0, usage - inactive), limit, oom, rd, wr, periods, throttled, cores
    )


# --- the collector --------------------------------------------------------------------------


@dataclass
class _Live:
    """A running container the sampler follows."""

    tracked: _Tracked
    paths: CgroupPaths | None
    files: CgroupFiles | None = None
    last_cpu_ns: int | None = None
    last_t: float | None = None
    stats: dict[str, Any] | None = None  # latest from the stats stream (fallback)
    stats_thread: threading.Thread | None = None
    stats_stream: Any = None


class DockerCollector:
    """Startup phases and per-container resources from a Docker Engine."""

    name = "docker"

    def __init__(self, settings: DockerSettings | None = None, client: Any | None = None) -> None:
        self.settings = settings or DockerSettings()
        self._client = client
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tracked: dict[str, _Tracked] = {}
        self._preexisting: dict[str, _Tracked] = {}
        self._live: dict[str, _Live] = {}
        self._retired: list[_Live] = []  # unfollowed; files to close in the sampler thread
        self._samples: list[ContainerSample] = []
        self._pulls: dict[str, int] = {}
        self._seen_events: set[tuple[str, str, int]] = set()
        self._warnings: list[str] = []
        self._available = False
        self._reason = ""
        self._stream: Any = None
        self._since_ns = 0  # the engine's clock when we started: older events are history
        self._last_event_ns = 0
        self._lost_since: float | None = None
        self._threads: list[threading.Thread] = []
        self._pollers: list[threading.Thread] = []
        self._mem_total = _host_memory()
        self._labels = dict(lbl.split("=", 1) for lbl in self.settings.labels)

    # -- protocol ---------------------------------------------------------------------------

    def start(self, ctx: RunContext | None = None) -> None:
        """Connect, list what already runs, open the event stream; never raises."""
        self._since_ns = time.time_ns()
        try:
            import docker
        except ImportError:
            self._reason = "docker is not installed: pip install 'labcap[docker]' brings it"
            return
        where = docker_host_description(self._client)
        try:
            if self._client is None:
                self._client = docker.from_env()
                where = docker_host_description(self._client)
            self._client.ping()
            # The engine's clock, not ours: a remote engine's clock may be off.
            engine_now = parse_engine_time(self._client.info().get("SystemTime"))
            self._since_ns = engine_now or self._since_ns
            self._stream = self._open_stream(self._since_ns // 1_000_000_000 - 1)
        except Exception as e:  # every failure to connect means the same: unavailable
            self._reason = describe_unavailable(e, where)
            return
        self._available = True
        self._adopt_running()
        for target, name in ((self._events_loop, "events"), (self._sample_loop, "sampler")):
            t = threading.Thread(target=target, name=f"labcap-docker-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._close_stream()
        for t in self._threads:
            t.join(timeout=5)
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            self._end_stats(live)
        self._close_retired()  # the sampler has stopped: nobody reads them any more
        for t in list(self._pollers):
            t.join(timeout=3)
        with self._lock:
            for t in self._tracked.values():
                if not t.terminal():
                    t.frozen_outcome = "unhealthy" if t.unhealthy else "timeout"
                    t.frozen_reason = "not ready when sampling stopped"

    def status(self) -> CollectorStatus:
        return CollectorStatus(self.name, self._available, self._reason, tuple(self._warnings[:20]))

    def tables(self) -> dict[str, Any]:
        import pandas as pd

        recs = self.startup_records()
        rec_cols = list(StartupRecord.__dataclass_fields__)
        sample_cols = list(ContainerSample.__dataclass_fields__)
        with self._lock:
            samples = list(self._samples)
        return {
            "startup_records": pd.DataFrame([r.__dict__ for r in recs], columns=rec_cols),
            "container_samples": pd.DataFrame([s.__dict__ for s in samples], columns=sample_cols),
        }

    # -- what probes use --------------------------------------------------------------------

    @property
    def engine_lost(self) -> bool:
        """True while the event stream is down (daemon stopped or unreachable)."""
        return self._lost_since is not None

    def note_requested(self, container_id: str, requested_unix: float) -> None:
        """The create call for this container was sent at ``requested_unix`` (labcap clock)."""
        with self._lock:
            t = self._tracked.get(container_id)
            if t is None:  # the create event has not arrived yet: keep a placeholder
                t = self._tracked[container_id] = _Tracked(
                    container_id, "", "", {}, 0, "pending", requested_unix=requested_unix
                )
            t.requested_unix = requested_unix

    def terminal(self, container_ids: list[str]) -> set[str]:
        """Those of ``container_ids`` that are ready or will never be."""
        with self._lock:
            return {c for c in container_ids if c in self._tracked and self._tracked[c].terminal()}

    def note_start_failed(self, container_id: str, reason: str) -> None:
        """The start call failed: the engine emits no ``die`` event for that."""
        with self._lock:
            t = self._tracked.get(container_id)
            if t is not None and not t.terminal():
                t.frozen_outcome, t.frozen_reason = "exited", reason

    def give_up(self, container_ids: list[str], reason: str) -> None:
        """Fix the outcome of containers that are not ready yet (before removing them)."""
        with self._lock:
            for c in container_ids:
                t = self._tracked.get(c)
                if t is not None and not t.terminal():
                    t.frozen_outcome = "unhealthy" if t.unhealthy else "timeout"
                    t.frozen_reason = reason
                if t is not None:
                    t.frozen_outcome = t.frozen_outcome or "settled"

    def startup_records(self) -> list[StartupRecord]:
        with self._lock:
            tracked = [t for t in self._tracked.values() if t.origin != "pending"]
            return [_record(t) for t in sorted(tracked, key=lambda t: t.origin_ns)]

    # -- event thread -----------------------------------------------------------------------

    def _open_stream(self, since_s: int) -> Any:
        return self._client.events(
            decode=True,
            since=since_s,
            filters={"type": ["container", "image"], "event": list(_EVENTS)},
        )

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _events_loop(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            if self._stream is None:
                try:
                    since = max(self._since_ns, self._last_event_ns) // 1_000_000_000 - 1
                    self._stream = self._open_stream(since)
                except Exception as e:
                    self._note_lost(e)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                self._note_back()
                backoff = 0.2
            try:
                for event in self._stream:
                    self._on_event(event)
                    if self._stop.is_set():
                        break
                if not self._stop.is_set():
                    self._note_lost(ConnectionError("the engine closed its event stream"))
            except Exception as e:
                if not self._stop.is_set():
                    self._note_lost(e)
            finally:
                self._close_stream()

    def _note_lost(self, exc: BaseException) -> None:
        if self._lost_since is None:
            self._lost_since = time.time()
            at = time.strftime("%H:%M:%S", time.localtime(self._lost_since))
            why = describe_unavailable(exc, docker_host_description(self._client))
            self._warnings.append(f"lost the Docker engine at {at}: {why}; reconnecting")

    def _note_back(self) -> None:
        if self._lost_since is not None:
            gap = time.time() - self._lost_since
            self._warnings.append(
                f"the Docker engine answered again after {gap:.1f} s; events of the gap "
                "were replayed from the engine's buffer"
            )
            self._lost_since = None

    def _wanted(self, name: str, labels: dict[str, str]) -> bool:
        s = self.settings
        if not s.compose_project and not self._labels:
            return True
        if s.compose_project and labels.get(COMPOSE_PROJECT) == s.compose_project:
            return True
        if self._labels and all(labels.get(k) == v for k, v in self._labels.items()):
            return True
        return any(fnmatch.fnmatch(name, p) for p in s.name_patterns)

    def _on_event(self, ev: dict[str, Any]) -> None:
        action = str(ev.get("Action") or ev.get("status") or "")
        ns = int(ev.get("timeNano") or int(ev.get("time", 0)) * 1_000_000_000)
        if ns < self._since_ns:
            return  # replayed from before we started watching
        actor = ev.get("Actor") or {}
        cid = str(actor.get("ID") or ev.get("id") or "")
        key = (cid, action, ns)
        if key in self._seen_events:
            return  # replayed after a reconnect
        self._seen_events.add(key)
        self._last_event_ns = max(self._last_event_ns, ns)
        attrs = dict(actor.get("Attributes") or {})
        if ev.get("Type") == "image":
            if action == "pull":
                self._pulls[_image_ref(cid)] = ns
            return
        name = attrs.pop("name", "")
        image = attrs.pop("image", "")
        if action == "create":
            if not self._wanted(name, attrs):
                return
            with self._lock:
                t = self._tracked.get(cid)
                if t is None or t.origin == "pending":
                    req = t.requested_unix if t else None
                    t = self._tracked[cid] = _Tracked(cid, name, image, attrs, ns, "created")
                    t.requested_unix = req
                t.created_ns = ns
                t.pulled_ns = self._pulls.get(_image_ref(image))
            return
        with self._lock:
            t = self._tracked.get(cid) or self._preexisting.get(cid)
        if t is None or t.origin == "pending":
            if action != "start" or not self._wanted(name, attrs):
                return
            with self._lock:  # first seen starting: it was created before we watched
                t = self._tracked[cid] = _Tracked(cid, name, image, attrs, ns, "started")
        if action == "start":
            self._on_start(t, ns)
        elif action.startswith("health_status"):
            with self._lock:
                if action.endswith(": healthy") and t.healthy_ns is None:
                    t.healthy_ns = ns
                t.unhealthy = action.endswith(": unhealthy")
        elif action == "die":
            code = attrs.get("exitCode")
            with self._lock:
                if t.exited_ns is None and t.frozen_outcome is None:
                    t.exited_ns = ns
                    t.exit_code = int(code) if code not in (None, "") else None
            self._unfollow(cid)
        elif action == "oom":
            with self._lock:
                t.oom_events += 1
                if t.frozen_outcome is None:
                    t.oom_killed = True
        elif action == "destroy":
            self._unfollow(cid)

    def _on_start(self, t: _Tracked, ns: int) -> None:
        # Inspect before publishing the start: until we know whether readiness means
        # HTTP or a health check, the container must not look "ready via running".
        info: dict[str, Any] = {}
        try:
            info = self._client.api.inspect_container(t.container_id)
        except Exception as e:  # removed already, or the engine went away
            with self._lock:
                t.reason = t.reason or f"inspect failed: {type(e).__name__}"
        state = info.get("State") or {}
        config = info.get("Config") or {}
        pid = state.get("Pid") or None
        hc = (config.get("Healthcheck") or {}).get("Test") or []
        with self._lock:
            t.starts += 1
            first = t.running_ns is None
            if first:
                t.started_ns = parse_engine_time(state.get("StartedAt"))
                t.has_healthcheck = bool(hc) and hc[0] != "NONE"
                t.http_target = _http_target(config.get("Labels") or t.labels)
                if t.created_ns is None:
                    t.created_ns = parse_engine_time(info.get("Created"))
                t.running_ns = ns
        if first and t.http_target and not self._stop.is_set():
            # One thread per container: a shared pool would queue a spawn storm's polls.
            poller = threading.Thread(
                target=self._poll_http, args=(t,), name="labcap-docker-http", daemon=True
            )
            poller.start()
            self._pollers.append(poller)
        if pid:
            self._follow(t, pid)

    # -- HTTP readiness (labcap's clock, loopback only) --------------------------------------

    def _poll_http(self, t: _Tracked) -> None:
        assert t.http_target is not None
        port, path = t.http_target
        deadline = time.monotonic() + self.settings.ready_timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if t.exited_ns is not None or t.frozen_outcome is not None:
                    return
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", path)
                status = conn.getresponse().status
                if status < 400:
                    with self._lock:
                        t.http_ready_unix = time.time()
                    return
            except OSError:
                pass
            finally:
                conn.close()
            self._stop.wait(self.settings.http_poll_s)

    # -- sampler thread ---------------------------------------------------------------------

    def _adopt_running(self) -> None:
        """Containers already running when we start: sampled, but no startup record."""
        try:
            for info in self._client.api.containers(all=False):
                name = (info.get("Names") or ["/"])[0].lstrip("/")
                labels = info.get("Labels") or {}
                if not self._wanted(name, labels):
                    continue
                cid = info["Id"]
                t = _Tracked(cid, name, info.get("Image", ""), labels, 0, "preexisting")
                t.starts = 1
                self._preexisting[cid] = t
                detail = self._client.api.inspect_container(cid)
                pid = (detail.get("State") or {}).get("Pid")
                if pid:
                    self._follow(t, pid)
        except Exception as e:
            self._warnings.append(f"listing running containers failed: {type(e).__name__}: {e}")

    def _follow(self, t: _Tracked, pid: int) -> None:
        paths = locate_cgroup(t.container_id, pid, self.settings)
        live = _Live(t, paths, CgroupFiles(paths) if paths else None)
        with self._lock:
            old = self._live.get(t.container_id)
            if old is not None:
                return
            self._live[t.container_id] = live
        if paths is None:
            self._start_stats(live)

    def _unfollow(self, cid: str) -> None:
        with self._lock:
            live = self._live.pop(cid, None)
        if live is not None:
            self._end_stats(live)

    def _start_stats(self, live: _Live) -> None:
        """The fallback when cgroup files are unreadable: the engine's stats stream."""
        if not any("stats stream" in w for w in self._warnings):
            self._warnings.append(
                "cgroup files unreadable here (remote engine?): resources come from the "
                "engine's stats stream, about one sample per second"
            )

        def reader() -> None:
            try:
                live.stats_stream = self._client.api.stats(
                    live.tracked.container_id, stream=True, decode=True
                )
                for s in live.stats_stream:
                    live.stats = s
                    if self._stop.is_set():
                        break
            except Exception:
                pass  # the container stopped; the sampler drops it

        live.stats_thread = threading.Thread(target=reader, name="labcap-docker-stats", daemon=True)
        live.stats_thread.start()

    def _end_stats(self, live: _Live) -> None:
        with self._lock:  # its files are closed by the sampler: it may be reading them now
            self._retired.append(live)
        if live.stats_stream is not None:
            with contextlib.suppress(Exception):
                live.stats_stream.close()

    def _sample_loop(self) -> None:
        interval = self.settings.interval_s
        next_t = time.monotonic() + interval
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            next_t += interval
            if next_t < time.monotonic():  # fell behind (suspended?): skip, don't burst
                next_t = time.monotonic() + interval
            try:
                self._sample_once()
            except Exception as e:  # a sampling error is a gap, not a crashed run
                if len(self._warnings) < 50:
                    self._warnings.append(f"sample failed: {type(e).__name__}: {e}")

    def _close_retired(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, []
        for live in retired:
            if live.files is not None:
                live.files.close()

    def _sample_once(self) -> None:
        self._close_retired()
        now = time.time()
        with self._lock:
            lives = list(self._live.values())
        rows = []
        for live in lives:
            t = live.tracked
            if live.paths is not None:
                reading = read_cgroup(live.paths, live.files)
                if reading is None:
                    continue
                cpu_pct = NAN
                if live.last_cpu_ns is not None and live.last_t is not None and now > live.last_t:
                    used_s = (reading.cpu_ns - live.last_cpu_ns) / 1e9
                    cpu_pct = 100.0 * used_s / (now - live.last_t)
                live.last_cpu_ns, live.last_t = reading.cpu_ns, now
                source = f"cgroup-v{live.paths.version}"
            else:
                reading, cpu_pct = _from_stats(live.stats)
                if reading is None:
                    continue
                source = "stats"
            with self._lock:
                restarts = max(0, t.starts - 1)
                oom = max(reading.oom_kills, t.oom_events)
            rows.append(
                ContainerSample(
                    t_unix=now,
                    container_id=t.container_id,
                    container=t.name,
                    service=t.labels.get(COMPOSE_SERVICE, ""),
                    cpu_pct=round(cpu_pct, 3) if not math.isnan(cpu_pct) else NAN,
                    mem_bytes=reading.mem_bytes,
                    mem_limit_bytes=reading.mem_limit_bytes or self._mem_total,
                    oom_kills=oom,
                    blkio_read_bytes=reading.read_bytes,
                    blkio_write_bytes=reading.write_bytes,
                    restarts=restarts,
                    source=source,
                    cpu_periods=reading.periods,
                    cpu_throttled_periods=reading.throttled,
                    cpu_limit_cores=reading.limit_cores or NAN,
                )
            )
        with self._lock:
            self._samples.extend(rows)


def _from_stats(s: dict[str, Any] | None) -> tuple[_Reading | None, float]:
    """A reading from one `docker stats` document (the fallback path)."""
    if not s or not s.get("memory_stats"):
        return None, NAN
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage", 0)
    d_cpu = total - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    d_sys = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or 1
    pct = 100.0 * d_cpu / d_sys * online if d_sys > 0 and d_cpu >= 0 else NAN
    mem = s["memory_stats"]
    stats = mem.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    rd = wr = 0
    for row in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(row.get("op", "")).lower()
        rd += row.get("value", 0) if op == "read" else 0
        wr += row.get("value", 0) if op == "write" else 0
    usage = int(mem.get("usage", 0))
    thr = cpu.get("throttling_data") or {}
    reading = _Reading(
        total, max(0, usage - inactive), mem.get("limit"), 0, rd, wr,
        int(thr.get("periods") or 0), int(thr.get("throttled_periods") or 0),
    )  # fmt: skip
    return reading, pct


def _http_target(labels: dict[str, str]) -> tuple[int, str] | None:
    port = labels.get(HTTP_PORT_LABEL, "")
    if not port.isdigit():
        return None
    path = labels.get(HTTP_PATH_LABEL) or "/"
    return int(port), path if path.startswith("/") else "/" + path


def _image_ref(ref: str) -> str:
    """``busybox`` and ``busybox:latest`` name one image."""
    last = ref.rsplit("/", 1)[-1]
    return ref if (":" in last or "@" in ref) else f"{ref}:latest"


def _host_memory() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return 0


def _record(t: _Tracked) -> StartupRecord:
    origin = t.origin_ns / 1e9

    def rel(ns: int | None) -> float:
        return NAN if ns is None else round(ns / 1e9 - origin, 6)

    ready = t.ready_unix()
    http_rel = NAN if t.http_ready_unix is None else round(t.http_ready_unix - origin, 6)
    ready_rel = NAN if ready is None else round(ready - origin, 6)
    if ready is not None:
        outcome, reason = "ready", t.reason
    elif t.exited_ns is not None:
        outcome = "exited"
        reason = "OOM-killed" if t.oom_killed else f"exited with code {t.exit_code}"
        if t.reason:
            reason = f"{reason}; {t.reason}"
    elif t.frozen_outcome in OUTCOMES:
        outcome, reason = t.frozen_outcome, t.frozen_reason
        if outcome == "unhealthy" and not reason.startswith("health"):
            reason = f"health check failing; {reason}"
    else:
        outcome, reason = "timeout", "not ready yet"
    return StartupRecord(
        container_id=t.container_id,
        container=t.name,
        image=t.image,
        service=t.labels.get(COMPOSE_SERVICE, ""),
        project=t.labels.get(COMPOSE_PROJECT, ""),
        t_unix=round(origin, 6),
        origin=t.origin,
        requested_s=NAN if t.requested_unix is None else round(t.requested_unix - origin, 6),
        pulled_s=rel(t.pulled_ns),
        created_s=rel(t.created_ns) if t.origin == "created" else NAN,
        started_s=rel(t.started_ns),
        running_s=rel(t.running_ns),
        healthy_s=rel(t.healthy_ns),
        http_ready_s=http_rel,
        ready_s=ready_rel,
        ready_via=t.ready_via,
        exited_s=rel(t.exited_ns),
        clock_source="engine+labcap" if t.http_target else "engine",
        outcome=outcome,
        exit_code=NAN if t.exit_code is None else float(t.exit_code),
        oom_killed=t.oom_killed,
        restarts=max(0, t.starts - 1),
        reason=reason,
    )


# --- contention signals per step -------------------------------------------------------------

CPU_SATURATED_PCT = 90.0  # host CPU busy at or above this is saturated
MEMORY_PRESSURE_PCT = 90.0  # of the host's memory, or of a container's limit
IOWAIT_PCT = 20.0  # mean I/O wait that makes a step I/O-bound


def contention_by_step(
    container_samples: Any, host_samples: Any, startup_records: Any, plan: Any
) -> list[dict[str, Any]]:
    """Per step: host CPU saturation, memory pressure, OOM kills, restarts, I/O wait.

    Tables carry ``step_index`` (the runner or the probe placed them); any may be
    None or empty. ``signals`` names what crossed its threshold.
    """
    out = []
    for step in plan.steps:
        row: dict[str, Any] = {"step_index": step.index, "users": step.users}
        h = _step_rows(host_samples, step.index)
        if h is not None and len(h):
            mem_pct = 100.0 * h["mem_used_bytes"] / h["mem_total_bytes"].clip(lower=1)
            row.update(
                host_cpu_pct_mean=_r(h["cpu_pct"].mean()),
                host_cpu_pct_max=_r(h["cpu_pct"].max()),
                host_iowait_pct_mean=_r(h["iowait_pct"].mean()),
                host_mem_used_pct_max=_r(mem_pct.max()),
            )
        c = _step_rows(container_samples, step.index)
        if c is not None and len(c):
            per_t = c.groupby("t_unix")["cpu_pct"].sum(min_count=1)
            mem_pct = 100.0 * c["mem_bytes"] / c["mem_limit_bytes"].clip(lower=1)
            before = container_samples[container_samples["step_index"] < step.index]
            row.update(
                containers=int(c["container_id"].nunique()),
                containers_cpu_pct_max=_r(per_t.max()),
                container_mem_pct_of_limit_max=_r(mem_pct.max()),
                oom_kills=_increase(c, before, "oom_kills"),
                restarts=_increase(c, before, "restarts"),
            )
        r = _step_rows(startup_records, step.index)
        if r is not None and len(r):
            row["oom_kills"] = max(row.get("oom_kills", 0), int(r["oom_killed"].sum()))
            row["restarts"] = max(row.get("restarts", 0), int(r["restarts"].sum()))
        row["signals"] = _signals(row)
        out.append(row)
    return out


def _step_rows(frame: Any, index: int) -> Any:
    if frame is None or not len(frame) or "step_index" not in frame.columns:
        return None
    return frame[frame["step_index"] == index]


def _increase(now: Any, before: Any, col: str) -> int:
    """How much a per-container cumulative counter grew during the step."""
    end = now.groupby("container_id")[col].max()
    start = before.groupby("container_id")[col].max() if len(before) else None
    if start is not None:
        end = end.sub(start.reindex(end.index).fillna(0))
    else:
        end = end - now.groupby("container_id")[col].min()
    return int(end.clip(lower=0).sum())


def _r(v: Any) -> float | None:
    return None if v is None or v != v else round(float(v), 2)


def _signals(row: dict[str, Any]) -> list[str]:
    s = []
    if (row.get("host_cpu_pct_max") or 0) >= CPU_SATURATED_PCT:
        s.append("cpu-saturated")
    if (row.get("host_mem_used_pct_max") or 0) >= MEMORY_PRESSURE_PCT or (
        row.get("container_mem_pct_of_limit_max") or 0
    ) >= MEMORY_PRESSURE_PCT:
        s.append("memory-pressure")
    if row.get("oom_kills"):
        s.append("oom-kills")
    if row.get("restarts"):
        s.append("restarts")
    if (row.get("host_iowait_pct_mean") or 0) >= IOWAIT_PCT:
        s.append("io-wait")
    return s
