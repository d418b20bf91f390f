"""Which component saturates first, from per-component resource use and per-endpoint
latency growth, and whether more nodes would help.

Components: ``hub``, ``proxy``, ``database``, ``mlflow``, ``spawner`` (the engine or
scheduler starting user servers), ``user-servers`` and ``gpu``. Containers (the Docker
collector's ``container_samples``) are named to a component by their Compose service or
container name; endpoints by their prefix (``hub.spawn*`` and ``startup.*``: spawner,
``kernel.*``: user servers, ``mlflow.*``: MLflow, other ``hub.*``: hub).

The method (``METHOD``), step by step up to the capacity limit (the first failing step, else
the last measured one):

1. a component is saturated at a step when one of its containers was CPU-throttled in at
   least ``THROTTLED_PCT`` % of its CFS periods, or used at least ``BUSY_PCT`` % of the CPU it
   may use (its ``--cpus`` limit; one core for the hub and the proxy, which run one
   single-threaded process each; the host's cores otherwise), or held at least ``MEM_PCT`` %
   of its memory limit; the GPU when it was at least ``BUSY_PCT`` % busy, or users waited
   over 5 s (p95) for one;
2. the bottleneck is the component saturated at the smallest step, the most saturated first
   among those of that step;
3. without resource evidence, the component whose endpoints' p95 grew most from the first
   step to the limit (at least ``GROWTH_MIN``-fold) is the likely bottleneck, on latency
   evidence alone.

One hub, one proxy and one database serve every user on K3s as on Compose: when one of them
is the bottleneck, more nodes do not raise capacity (``scales_out`` is False). User servers,
the spawner's container starts, MLflow (stateless replicas) and GPUs spread over nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from labcap.planner.capacity import CapacityPlan

COMPONENTS = ("hub", "proxy", "database", "mlflow", "spawner", "user-servers", "gpu")
SCALES_OUT = {
    "hub": False,
    "proxy": False,
    "database": False,
    "mlflow": True,
    "spawner": True,
    "user-servers": True,
    "gpu": True,
}
SINGLE_THREADED = frozenset({"hub", "proxy"})
THROTTLED_PCT = 20.0
BUSY_PCT = 85.0
MEM_PCT = 90.0
GROWTH_MIN = 2.0
GPU_WAIT_MS = 5000.0

METHOD = (
    f"a component is saturated at a step when a container of it was CPU-throttled in "
    f">= {THROTTLED_PCT:g}% of its periods, used >= {BUSY_PCT:g}% of the CPU it may use (its "
    f"limit; one core for the single-threaded hub and proxy; else the host's cores) or "
    f">= {MEM_PCT:g}% of its memory limit; the bottleneck is the one saturated at the "
    f"smallest step; without resource evidence, the component whose p95 grew most "
    f"(>= {GROWTH_MIN:g}x) from the first step to the limit"
)

# name fragments, checked in this order (a user server "jupyter-alice" is not the hub)
_NAMES = (
    ("user-servers", ("jupyter-",)),
    ("proxy", ("proxy", "chp", "traefik")),
    ("database", ("postgres", "mysql", "mariadb", "database", "db")),
    ("mlflow", ("mlflow",)),
    ("hub", ("hub",)),
)


def component_of_container(name: str, service: str = "") -> str | None:
    """The component a container belongs to, by its Compose service, else its name."""
    for text in (service, name):
        low = (text or "").lower()
        for component, fragments in _NAMES:
            if any(f in low for f in fragments):
                return component
    return None


def component_of_endpoint(endpoint: str) -> str | None:
    if endpoint.startswith(("hub.spawn", "startup.")):
        return "spawner"
    if endpoint.startswith("kernel."):
        return "user-servers"
    if endpoint.startswith("mlflow."):
        return "mlflow"
    if endpoint.startswith("hub."):
        return "hub"
    return None


@dataclass(frozen=True)
class Saturation:
    component: str
    users: int  # the first step at which it was saturated
    score: float  # how far past its bound (1.0: at it)
    evidence: str


@dataclass(frozen=True)
class Bottleneck:
    """The component that saturates first, and whether more nodes would help."""

    component: str | None  # None: no evidence either way
    scales_out: bool | None
    basis: str  # resources | latency | none
    at_users: int | None
    evidence: tuple[str, ...]
    others: tuple[str, ...] = ()  # other saturated components, with where
    method: str = METHOD

    @property
    def more_nodes_help(self) -> bool | None:
        return self.scales_out

    def summary(self) -> str:
        if self.component is None:
            return "no component was seen to saturate (no resource samples, no latency growth)"
        evidence = "; ".join(self.evidence[:2])
        if self.basis != "resources":
            nodes = (
                f"if the {self.component} is saturated, more nodes will not help (one "
                f"{self.component} serves every user on K3s too); resource samples "
                "(--target docker) would tell"
                if self.scales_out is False
                else "it scales out over nodes"
            )
            return f"{self.component} is the likely bottleneck ({evidence}); {nodes}"
        nodes = (
            f"more nodes will not help: one {self.component} serves every user on K3s too"
            if self.scales_out is False
            else "it scales out over nodes"
        )
        return f"{self.component} saturates first ({evidence}); {nodes}"

    @property
    def scales_out_measured(self) -> str:
        """yes | no | unknown for the policy: 'no' only on resource evidence, since latency
        growth alone can come from a host every component shares."""
        if self.scales_out is None or (self.basis != "resources" and not self.scales_out):
            return "unknown"
        return "yes" if self.scales_out else "no"

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "scales_out": self.scales_out,
            "basis": self.basis,
            "at_users": self.at_users,
            "evidence": list(self.evidence),
            "others": list(self.others),
            "summary": self.summary(),
            "method": self.method,
        }


def _limit_index(plan: CapacityPlan) -> int | None:
    bad = next((s for s in plan.steps if s.verdict in ("fail", "no-data")), None)
    if bad is not None:
        return bad.index
    ran = [s for s in plan.steps if s.verdict != "not-run"]
    return ran[-1].index if ran else None


def container_saturation(
    samples: Any, plan: CapacityPlan, host_cores: int | None
) -> list[Saturation]:
    """Per component, the first step (up to the limit) at which its containers saturated."""
    limit = _limit_index(plan)
    if samples is None or not len(samples) or limit is None or "step_index" not in samples:
        return []
    users = {s.index: s.users for s in plan.steps}
    found: dict[str, Saturation] = {}
    cols = set(samples.columns)
    for (_cid, step), rows in samples.groupby(["container_id", "step_index"], sort=True):
        # before the first step (-1) or after the limit: not load the run put on it
        if step is None or (isinstance(step, float) and math.isnan(step)) or not 0 <= step <= limit:
            continue
        first = rows.iloc[0]
        name = str(first.get("container", first.get("container_id", "")))
        service = str(first.get("service", "") or "")
        component = component_of_container(name, service)
        name = f"{service} ({name})" if service else name
        if component is None:
            continue
        marks: list[tuple[float, str]] = []
        if {"cpu_periods", "cpu_throttled_periods"} <= cols:
            periods = float(rows["cpu_periods"].max() - rows["cpu_periods"].min())
            thr = float(rows["cpu_throttled_periods"].max() - rows["cpu_throttled_periods"].min())
            if periods > 0:
                pct = 100 * thr / periods
                if pct >= THROTTLED_PCT:
                    marks.append(
                        (pct / THROTTLED_PCT, f"CPU-throttled in {pct:.0f}% of its CFS periods")
                    )
        cpu = rows["cpu_pct"].dropna()
        if len(cpu):
            limit_cores = (
                float(rows["cpu_limit_cores"].dropna().iloc[0])
                if "cpu_limit_cores" in cols and rows["cpu_limit_cores"].notna().any()
                else None
            )
            if limit_cores:
                may, what = 100 * limit_cores, f"its {limit_cores:g}-core limit"
            elif component in SINGLE_THREADED:
                may, what = 100.0, "one core (a single-threaded process)"
            else:
                may, what = 100.0 * (host_cores or 1), f"the host's {host_cores or 1} cores"
            busy = 100 * float(cpu.mean()) / may
            if busy >= BUSY_PCT:
                used = f"CPU {float(cpu.mean()):.0f}% of a core, {busy:.0f}% of {what}"
                marks.append((busy / BUSY_PCT, used))
        if {"mem_bytes", "mem_limit_bytes"} <= cols:
            mem = float((100 * rows["mem_bytes"] / rows["mem_limit_bytes"].clip(lower=1)).max())
            if mem >= MEM_PCT:
                marks.append((mem / MEM_PCT, f"memory at {mem:.0f}% of its limit"))
        if not marks:
            continue
        score, why = max(marks)
        at = users.get(int(step), 0)
        sat = Saturation(component, at, score, f"{name}: {why} at {at} users")
        old = found.get(component)
        if old is None or (sat.users, -sat.score) < (old.users, -old.score):
            found[component] = sat
    return sorted(found.values(), key=lambda s: (s.users, -s.score))


def gpu_saturation(plan: CapacityPlan, gpu: dict[str, Any]) -> list[Saturation]:
    limit = _limit_index(plan)
    at = next((s.users for s in plan.steps if s.index == limit), 0)
    out: list[Saturation] = []
    util, wait = gpu.get("gpu_util_pct"), gpu.get("gpu_queue_wait_p95_ms")
    if isinstance(util, int | float) and util >= BUSY_PCT:
        out.append(Saturation("gpu", at, util / BUSY_PCT, f"GPUs {util:.0f}% busy at {at} users"))
    if isinstance(wait, int | float) and wait > GPU_WAIT_MS:
        out.append(
            Saturation("gpu", at, wait / GPU_WAIT_MS, f"users waited {wait:.0f} ms (p95) for a GPU")
        )
    return out


def latency_growth(plan: CapacityPlan) -> list[tuple[float, str, str]]:
    """(growth, component, evidence) per component: its endpoints' largest p95 growth from
    the first measured step to the limit, largest first."""
    limit = _limit_index(plan)
    if limit is None:
        return []
    by_ep: dict[str, dict[int, float]] = {}
    for e in plan.endpoints:
        if e.p95_ms and e.step_index <= limit and e.requests > e.failures:
            by_ep.setdefault(e.endpoint, {})[e.step_index] = e.p95_ms
    users = {s.index: s.users for s in plan.steps}
    best: dict[str, tuple[float, str, str]] = {}
    for ep, series in by_ep.items():
        component = component_of_endpoint(ep)
        if component is None or len(series) < 2:
            continue
        first, last = min(series), max(series)
        growth = series[last] / series[first]
        text = (
            f"{ep} p95 {series[first]:g} ms at {users[first]} users -> {series[last]:g} ms at "
            f"{users[last]} users ({growth:.1f}x)"
        )
        if component not in best or growth > best[component][0]:
            best[component] = (growth, component, text)
    return sorted(best.values(), reverse=True)


def attribute(
    plan: CapacityPlan,
    samples: Any = None,
    host_cores: int | None = None,
    gpu: dict[str, Any] | None = None,
) -> Bottleneck:
    """The bottleneck of a run (see the module's method)."""
    saturated = sorted(
        container_saturation(samples, plan, host_cores) + gpu_saturation(plan, gpu or {}),
        key=lambda s: (s.users, -s.score),
    )
    growth = latency_growth(plan)
    growth_of = {c: text for _, c, text in growth}
    if saturated:
        top = saturated[0]
        evidence = [top.evidence]
        if top.component in growth_of:
            evidence.append(growth_of[top.component])
        others = tuple(
            f"{s.component} ({s.evidence})" for s in saturated[1:] if s.component != top.component
        )
        scales = SCALES_OUT[top.component]
        return Bottleneck(top.component, scales, "resources", top.users, tuple(evidence), others)
    if growth and growth[0][0] >= GROWTH_MIN:
        g, component, text = growth[0]
        limit = _limit_index(plan)
        at = next((s.users for s in plan.steps if s.index == limit), None)
        return Bottleneck(
            component,
            SCALES_OUT[component],
            "latency",
            at,
            (text, "no resource samples show it saturated: latency evidence only"),
        )
    return Bottleneck(None, None, "none", None, ())


def attribute_run(plan: CapacityPlan, run: Any, gpu: dict[str, Any] | None = None) -> Bottleneck:
    """``attribute`` over a run directory's container samples and environment."""
    samples = run.table("container_samples") if run is not None else None
    cores = None
    if run is not None:
        cores = (run.read_manifest().environment or {}).get("cpu_count")
    return attribute(plan, samples, cores if isinstance(cores, int) else None, gpu)


__all__ = [
    "COMPONENTS",
    "METHOD",
    "SCALES_OUT",
    "Bottleneck",
    "attribute",
    "attribute_run",
    "component_of_container",
    "component_of_endpoint",
]
