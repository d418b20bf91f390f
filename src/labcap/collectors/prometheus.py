"""The lab's own metrics from its Prometheus, for a lab on another machine.

``--prometheus-url URL`` reads the lab's existing Prometheus through its HTTP API
(``/api/v1/query_range``) over the run's time range once the load has stopped, and
puts what it finds into the tables the local collectors fill, each row marked
``source="prometheus"``:

==========================================  =================================================
node-exporter ``node_cpu_seconds_total``     ``host_samples`` (cpu_pct = 100 - idle,
``node_memory_*``, ``node_load1``            iowait_pct, memory, load1, per instance) and
                                             ``host_cpu_modes`` (every CPU mode, %)
cAdvisor ``container_cpu_usage_seconds``,    ``container_samples`` (cpu_pct, mem_bytes,
``container_cpu_cfs_throttled_periods`` /    mem_limit_bytes, oom_kills, cpu_throttled_pct
``container_cpu_cfs_periods``, memory        = throttled periods / periods, %)
dcgm-exporter ``DCGM_FI_*``                  ``gpu_samples`` (same fields as the dcgm collector)
==========================================  =================================================

The query step is the server's scrape interval (``/api/v1/status/config``), rates
are taken over four of them, so every step window gets several points. The run maps
each row onto its step by ``t_unix``, as for any collector. A family the server does not
have (no cAdvisor, no GPU) is named in the collector's status, not an error; a query
that fails is a warning (a gap). Reachability is checked before the run
(``check_prometheus``): a bad or silent URL is one line, exit 2.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from labcap.collectors.base import CollectorStatus, RunContext
from labcap.collectors.dcgm import FIELDS as DCGM_FIELDS
from labcap.collectors.dcgm import INT_FIELDS, gpu_sample
from labcap.collectors.docker import ContainerSample
from labcap.collectors.gpu import sample_frames
from labcap.collectors.host import HostSample
from labcap.errors import LabcapError

SOURCE = "prometheus"
MAX_POINTS = 10_000  # Prometheus refuses a query_range of more than 11,000 points a series
DEFAULT_SCRAPE_S = 15.0  # Prometheus's own default scrape_interval


@dataclass(frozen=True)
class PrometheusSettings:
    url: str = field(default="", metadata={"help": "The lab's Prometheus base URL."})
    step_s: float | None = field(
        default=None, metadata={"help": "Query resolution [default: the scrape interval]."}
    )
    timeout_s: float = field(default=10.0, metadata={"help": "Limit for one API call."})
    settle_s: float | None = field(
        default=None,
        metadata={"help": "Wait after the load for its last scrape [default: one interval]."},
    )


@dataclass(frozen=True)
class ContainerPromSample(ContainerSample):
    """A cAdvisor container at one instant: ContainerSample plus CPU throttling."""

    cpu_throttled_pct: float = math.nan  # CFS periods throttled / periods, %
    instance: str = ""


@dataclass(frozen=True)
class CpuModeSample:
    t_unix: float
    instance: str
    mode: str  # node-exporter's mode: user, system, iowait, idle, steal, ...
    pct: float  # of the node's whole CPU time
    source: str = SOURCE


def check_prometheus_url(url: str) -> str:
    """An http(s) base URL (no query), trailing slash removed; else one clear error."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise LabcapError(
            f"--prometheus-url {url!r} is not an http(s) base URL (e.g. http://127.0.0.1:9090)"
        )
    return url.rstrip("/")


def check_prometheus(url: str, *, timeout_s: float = 5.0, session: Any = None) -> str:
    """The server's version, or one LabcapError line: bad URL, no answer, not Prometheus."""
    import requests

    url = check_prometheus_url(url)
    s = session or requests.Session()
    try:
        r = s.get(f"{url}/api/v1/status/buildinfo", timeout=timeout_s)
    except requests.RequestException as e:
        raise LabcapError(f"--prometheus-url {url}: no answer ({_short(e)})") from None
    try:
        body = r.json() if r.status_code == 200 else None
    except ValueError:  # requests' JSONDecodeError is a ValueError (and a RequestException)
        body = None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise LabcapError(
            f"--prometheus-url {url}: not a Prometheus HTTP API "
            f"(GET /api/v1/status/buildinfo answered HTTP {r.status_code})"
        )
    return str((body.get("data") or {}).get("version", "unknown"))


def scrape_interval_s(config_yaml: str) -> float:
    """The global ``scrape_interval`` of a Prometheus config, in seconds (default 15)."""
    import yaml

    try:
        text = str((yaml.safe_load(config_yaml) or {}).get("global", {}).get("scrape_interval"))
    except (yaml.YAMLError, AttributeError):
        return DEFAULT_SCRAPE_S
    return _duration_s(text) or DEFAULT_SCRAPE_S


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _duration_s(text: str) -> float | None:
    """A Prometheus duration (``15s``, ``1m30s``) in seconds; None if it is not one."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _UNITS[u] for n, u in parts)


# cAdvisor's identity labels: Docker (name, compose service) and the kubelet (pod, container)
_IDENTITY = "instance, id"
_C = '{image!=""}'  # real containers, not the cgroup hierarchy's aggregates


def host_queries(w: str) -> dict[str, str]:
    return {
        "modes": f"100 * avg by (instance, mode) (rate(node_cpu_seconds_total[{w}]))",
        "mem_total": "max by (instance) (node_memory_MemTotal_bytes)",
        "mem_available": "max by (instance) (node_memory_MemAvailable_bytes)",
        "load1": "max by (instance) (node_load1)",
    }


def container_queries(w: str) -> dict[str, str]:
    by = f"by ({_IDENTITY})"
    return {
        "labels": f"container_memory_working_set_bytes{_C}",
        "cpu_pct": f"100 * sum {by} (rate(container_cpu_usage_seconds_total{_C}[{w}]))",
        "throttled_pct": (
            f"100 * sum {by} (rate(container_cpu_cfs_throttled_periods_total{_C}[{w}]))"
            f" / sum {by} (rate(container_cpu_cfs_periods_total{_C}[{w}]))"
        ),
        "mem_bytes": f"max {by} (container_memory_working_set_bytes{_C})",
        "mem_limit": f"max {by} (container_spec_memory_limit_bytes{_C})",
        "machine_mem": "max by (instance) (machine_memory_bytes)",
        "oom": f"max {by} (container_oom_events_total{_C})",
        "fs_read": f"sum {by} (container_fs_reads_bytes_total{_C})",
        "fs_write": f"sum {by} (container_fs_writes_bytes_total{_C})",
    }


class PrometheusCollector:
    """Reads the lab's Prometheus for the run's time range once the load has stopped."""

    name = "prometheus"

    def __init__(self, settings: PrometheusSettings, session: Any = None) -> None:
        self.settings = settings
        self._session = session  # a requests.Session; injected for tests
        self._t0: float | None = None
        self._t1: float | None = None
        self._frames: dict[str, Any] = {}
        self._warnings: list[str] = []
        self._found: list[str] = []
        self._absent: list[str] = []
        self._available = False
        self._reason = ""
        self._step_s = settings.step_s or DEFAULT_SCRAPE_S
        self._progress: Any = None

    # -- the Collector protocol ----------------------------------------------------------------

    def start(self, ctx: RunContext | None = None) -> None:
        import requests

        self._progress = getattr(ctx, "progress", None)
        self._session = self._session or requests.Session()
        try:
            check_prometheus(
                self.settings.url, timeout_s=self.settings.timeout_s, session=self._session
            )
        except LabcapError as e:
            self._reason = str(e)
            return
        if self.settings.step_s is None:
            try:
                cfg = self._api("status/config", {})
                self._step_s = scrape_interval_s(str(cfg.get("yaml", "")))
            except Exception as e:  # a server that hides its config: the default interval
                self._warnings.append(f"scrape interval unknown ({_short(e)}); using 15 s")
        self._available = True
        self._t0 = time.time()

    def stop(self) -> None:
        if not self._available or self._t1 is not None:
            return
        self._t1 = time.time()
        settle_s = self.settings.settle_s
        time.sleep(min(self._step_s, 15.0) if settle_s is None else max(0.0, settle_s))
        self._frames = self._read(self._t0 or self._t1, self._t1)

    def tables(self) -> dict[str, Any]:
        return dict(self._frames)

    def status(self) -> CollectorStatus:
        reason = self._reason
        if self._available and (self._found or self._absent):
            reason = (
                f"found: {', '.join(self._found) or 'nothing'}; "
                f"absent: {', '.join(self._absent) or 'nothing'}"
            )
        return CollectorStatus(self.name, self._available, reason, tuple(self._warnings[:20]))

    # -- reading ----------------------------------------------------------------------------

    def _api(self, path: str, params: dict[str, Any]) -> Any:
        url = f"{check_prometheus_url(self.settings.url)}/api/v1/{path}"
        r = self._session.get(url, params=params, timeout=self.settings.timeout_s)
        body = r.json()
        if body.get("status") != "success":
            raise LabcapError(f"{body.get('errorType', 'error')}: {body.get('error', '')[:200]}")
        return body["data"]

    def _range(self, query: str, t0: float, t1: float, step_s: float) -> list[dict[str, Any]]:
        """query_range's series: [{"metric": labels, "values": [[t, "v"], ...]}, ...]."""
        try:
            data = self._api(
                "query_range", {"query": query, "start": t0, "end": t1, "step": step_s}
            )
        except Exception as e:
            msg = f"query failed: {query[:80]}: {_short(e)}"
            if msg not in self._warnings:
                self._warnings.append(msg)
            return []
        return list(data.get("result") or [])

    def _read(self, t0: float, t1: float) -> dict[str, Any]:
        step_s = max(self._step_s, (t1 - t0) / MAX_POINTS)
        window = f"{max(4 * self._step_s, 2 * step_s):g}s"
        q = _Querier(self, t0, t1, step_s)
        out: dict[str, Any] = {}
        for family, read in (
            ("node-exporter", _host_tables),
            ("cAdvisor", _container_tables),
            ("dcgm-exporter", _gpu_tables),
        ):
            tables = read(q, window)
            if any(len(f) for f in tables.values()):
                self._found.append(family)
                out.update(tables)
            else:
                self._absent.append(family)
            if self._progress is not None:
                rows = ", ".join(f"{len(f)} {n}" for n, f in tables.items())
                self._progress(f"collector prometheus: {family}: {rows}")
        return out


@dataclass(frozen=True)
class _Querier:
    collector: PrometheusCollector
    t0: float
    t1: float
    step_s: float

    def series(self, query: str) -> list[dict[str, Any]]:
        return self.collector._range(query, self.t0, self.t1, self.step_s)

    def points(self, query: str, *keys: str) -> dict[tuple[Any, ...], float]:
        """(label values..., t) -> value; NaN and Inf answers are left out."""
        out: dict[tuple[Any, ...], float] = {}
        for s in self.series(query):
            labels = s.get("metric", {})
            for t, v in s.get("values", []):
                value = float(v)
                if math.isfinite(value):
                    out[(*(labels.get(k, "") for k in keys), float(t))] = value
        return out


def _host_tables(q: _Querier, w: str) -> dict[str, Any]:
    import pandas as pd

    qs = host_queries(w)
    modes = q.points(qs["modes"], "instance", "mode")
    total = q.points(qs["mem_total"], "instance")
    avail = q.points(qs["mem_available"], "instance")
    load = q.points(qs["load1"], "instance")
    mode_rows = [CpuModeSample(t, inst, mode, round(v, 3)) for (inst, mode, t), v in modes.items()]
    host_rows = []
    for inst, t in sorted({(i, t) for (i, m, t) in modes if m == "idle"}):
        mem_total = total.get((inst, t))
        mem_avail = avail.get((inst, t))
        host_rows.append(
            HostSample(
                t_unix=t,
                cpu_pct=round(100.0 - modes[(inst, "idle", t)], 2),
                iowait_pct=round(modes.get((inst, "iowait", t), 0.0), 2),
                mem_used_bytes=int(mem_total - mem_avail) if mem_total and mem_avail else -1,
                mem_total_bytes=int(mem_total) if mem_total else -1,
                load1=load.get((inst, t), math.nan),
                source=SOURCE,
                instance=inst,
            )
        )
    return {
        "host_samples": _frame(pd, host_rows, HostSample),
        "host_cpu_modes": _frame(pd, sorted(mode_rows, key=lambda r: r.t_unix), CpuModeSample),
    }


def _container_tables(q: _Querier, w: str) -> dict[str, Any]:
    import pandas as pd

    qs = container_queries(w)
    names: dict[tuple[str, str], tuple[str, str]] = {}
    for s in q.series(qs["labels"]):
        m = s.get("metric", {})
        names[(m.get("instance", ""), m.get("id", ""))] = _container_name(m)
    fields = ("cpu_pct", "throttled_pct", "mem_bytes", "mem_limit", "oom", "fs_read", "fs_write")
    vals = {k: q.points(qs[k], "instance", "id") for k in fields}
    machine = q.points(qs["machine_mem"], "instance")
    rows = []
    for inst, cid, t in sorted(set(vals["mem_bytes"]) | set(vals["cpu_pct"])):
        key = (inst, cid, t)
        name, service = names.get((inst, cid), (cid, cid))
        limit = vals["mem_limit"].get(key, 0.0)
        if not limit or limit >= 2**62:  # no limit: the machine's memory, as docker stats shows
            limit = machine.get((inst, t), math.nan)
        rows.append(
            ContainerPromSample(
                t_unix=t,
                container_id=_container_id(cid),
                container=name,
                service=service,
                cpu_pct=round(vals["cpu_pct"].get(key, math.nan), 2),
                mem_bytes=vals["mem_bytes"].get(key, math.nan),
                mem_limit_bytes=limit,
                oom_kills=vals["oom"].get(key, math.nan),
                blkio_read_bytes=vals["fs_read"].get(key, math.nan),
                blkio_write_bytes=vals["fs_write"].get(key, math.nan),
                restarts=math.nan,  # type: ignore[arg-type]  # cAdvisor does not count them
                source=SOURCE,
                cpu_throttled_pct=round(vals["throttled_pct"].get(key, math.nan), 3),
                instance=inst,
            )
        )
    return {"container_samples": _frame(pd, rows, ContainerPromSample)}


def _container_name(labels: dict[str, str]) -> tuple[str, str]:
    """(container, service) from cAdvisor's labels: Docker's name, else the kubelet's pod."""
    if labels.get("pod"):
        name = f"{labels.get('namespace', '')}/{labels['pod']}/{labels.get('container', '')}"
        return name, labels.get("container") or labels["pod"]
    name = labels.get("name") or labels.get("id", "")
    return name, labels.get("container_label_com_docker_compose_service") or name


def _container_id(cgroup: str) -> str:
    """A Docker/CRI id from cAdvisor's cgroup path (``/system.slice/docker-<id>.scope``)."""
    last = cgroup.rstrip("/").rsplit("/", 1)[-1]
    for prefix in ("docker-", "cri-containerd-", "crio-", "libpod-"):
        last = last.removeprefix(prefix)
    return last.removesuffix(".scope") or cgroup


def _gpu_tables(q: _Querier, w: str) -> dict[str, Any]:
    keys = ("instance", "gpu", "UUID", "GPU_I_ID", "namespace", "pod", "container")
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for metric, (fname, scale) in DCGM_FIELDS.items():
        for s in q.series(metric):
            labels = s.get("metric", {})
            for t, v in s.get("values", []):
                value = float(v) * scale
                if not math.isfinite(value):
                    continue
                row = rows.setdefault(
                    (*(labels.get(k, "") for k in keys), float(t)), {"labels": labels}
                )
                row[fname] = int(round(value)) if fname in INT_FIELDS else round(value, 3)
    samples = [gpu_sample(r.pop("labels"), r, k[-1], source=SOURCE) for k, r in rows.items()]
    samples.sort(key=lambda s: s.t_unix)
    return {k: v for k, v in sample_frames(samples, []).items() if k == "gpu_samples"}


def _frame(pd: Any, rows: list[Any], record: type) -> Any:
    return pd.DataFrame([r.__dict__ for r in rows], columns=list(record.__dataclass_fields__))


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text[:200]}"
