"""Sizing a deployment from a measured capacity plan and the users a lab expects.

Every number the templates use is a ``Decision``: its value, its unit, the
measured figure or setting it came from, and the rule that turned one into the
other. ``sizing.json`` and the runbook print them all, so an operator can see
why the hub's ``start_timeout`` is 90 s and not JupyterHub's default 60.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from labcap.deploy_profiles.gpu import GpuPlan, plan_gpus
from labcap.errors import LabcapError
from labcap.planner.bottleneck import Bottleneck
from labcap.planner.capacity import CapacityPlan, EndpointStats

PLATFORMS = ("compose", "k3s")

SPAWN_ENDPOINT = "hub.spawn_ready"
MLFLOW_PREFIX = "mlflow."
# The guide's container startup bound (Compose 10-30 s) when the run set no spawn SLO.
DEFAULT_SPAWN_SLO_MS = 30_000.0
USER_HEADROOM = 1.2  # expected users -> design users
START_TIMEOUT_HEADROOM = 2.0  # spawn p95 -> start_timeout
START_TIMEOUT_FLOOR_S = 60  # JupyterHub's own default start_timeout
MIN_SPAWN_LIMIT = 2
MLFLOW_HEADROOM = 2.0
MLFLOW_DEFAULT_WORKERS = 4  # `mlflow server --workers` default
MLFLOW_WORKERS_PER_REPLICA = 4
# Connection pools, set explicitly in the templates so max_connections adds up.
HUB_DB_CONNECTIONS = 15  # SQLAlchemy's default pool (5) + overflow (10)
MLFLOW_DB_CONNECTIONS_PER_WORKER = 5  # MLFLOW_SQLALCHEMYSTORE_POOL_SIZE=2 + MAX_OVERFLOW=3
ADMIN_DB_CONNECTIONS = 10  # psql, pg_dump, monitoring


@dataclass(frozen=True)
class ProfileSettings:
    """What the operator asks for. Defaults are stated in sizing.json as such."""

    platform: str  # compose | k3s
    expected_users: int | None = None  # concurrent users the lab expects
    gpus: int = 0  # GPUs in the deployment (all GPU nodes together)
    gpu_sharing: str = "none"  # none | time-slicing | mig
    gpu_users: int | None = None  # concurrent GPU users [default: every design user]
    time_slicing_replicas: int | None = None  # shares per GPU [default: derived]
    mig_profiles: tuple[str, ...] = ()  # PROFILE[=COUNT per GPU]
    gpu_model: str | None = None  # e.g. A100-40GB (needed for MIG)
    domain: str = "lab.example.org"  # public host name of the hub
    cpu_per_user: float = 2.0  # CPU limit of one user server (cores)
    mem_per_user_gib: float = 4.0  # memory limit of one user server
    storage_per_user_gib: int = 10  # home volume of one user
    mlflow_artifacts_gib: int = 100  # MLflow artifact store volume
    postgres_storage_gib: int = 20  # PostgreSQL data volume
    admin_users: tuple[str, ...] = ()  # hub admins [default: kept from .env, else "admin"]
    idle_timeout_s: int = 3600  # idle user servers are stopped after this (idle culler)
    images: tuple[tuple[str, str], ...] = ()  # (IMAGES key, image reference) overrides


@dataclass(frozen=True)
class Decision:
    key: str
    value: Any
    unit: str
    source: str
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class SpawnPoint:
    users: int
    p95_ms: float
    mean_ms: float
    rps: float


@dataclass(frozen=True)
class Measurement:
    """What the run measured that sizing uses."""

    run: str
    status: str
    status_reasons: tuple[str, ...]
    max_users_at_slo: int | None
    band: tuple[int, int | None] | None
    limit_reached: bool
    spawn_slo_ms: float
    spawn_slo_source: str
    spawn_curve: tuple[SpawnPoint, ...]
    incomplete_note: str | None

    @property
    def complete(self) -> bool:
        return self.incomplete_note is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "status": self.status,
            "status_reasons": list(self.status_reasons),
            "complete": self.complete,
            "max_users_at_slo": self.max_users_at_slo,
            "band": list(self.band) if self.band else None,
            "limit_reached": self.limit_reached,
            "spawn_slo_ms": self.spawn_slo_ms,
            "spawn_slo_source": self.spawn_slo_source,
            "spawn_curve": [
                {"users": p.users, "p95_ms": p.p95_ms, "mean_ms": p.mean_ms, "rps": p.rps}
                for p in self.spawn_curve
            ],
            "note": self.incomplete_note,
        }


@dataclass(frozen=True)
class Sizing:
    platform: str
    settings: ProfileSettings
    measurement: Measurement
    gpu: GpuPlan
    decisions: tuple[Decision, ...]
    warnings: tuple[str, ...] = field(default=())

    def value(self, key: str) -> Any:
        for d in self.decisions:
            if d.key == key:
                return d.value
        raise KeyError(key)

    def values(self) -> dict[str, Any]:
        """Decisions as a nested dict: 'hub.start_timeout_s' -> values['hub']['start_timeout_s']."""
        out: dict[str, Any] = {}
        for d in self.decisions:
            group, _, name = d.key.partition(".")
            out.setdefault(group, {})[name] = d.value
        return out


def measure(plan: CapacityPlan) -> Measurement:
    """The figures sizing reads from a capacity plan."""
    slo_ms, slo_source = _spawn_slo(plan)
    curve = tuple(
        SpawnPoint(e.users, e.p95_ms, e.mean_ms or e.p95_ms, e.rps)
        for e in sorted(plan.endpoints, key=lambda e: e.users)
        if e.endpoint == SPAWN_ENDPOINT and e.p95_ms is not None
    )
    note = None
    cap = plan.max_users_at_slo
    if plan.status != "complete":
        why = "; ".join(plan.status_reasons) or "no reason recorded"
        note = (
            f"sizing rests on an incomplete measurement: the run is {plan.status} ({why}); "
            "its capacity figure is a lower bound at best"
        )
    elif not cap:
        note = "sizing rests on an incomplete measurement: the run gives no capacity figure " + (
            "(even its first step missed the SLOs)" if cap == 0 else "(no step measured)"
        )
    return Measurement(
        run=plan.run,
        status=plan.status,
        status_reasons=tuple(plan.status_reasons),
        max_users_at_slo=cap,
        band=plan.band,
        limit_reached=plan.limit_reached,
        spawn_slo_ms=slo_ms,
        spawn_slo_source=slo_source,
        spawn_curve=curve,
        incomplete_note=note,
    )


def _spawn_slo(plan: CapacityPlan) -> tuple[float, str]:
    slos = plan.slos
    own = [s for s in slos if s.endpoint == SPAWN_ENDPOINT and s.metric == "p95_ms"]
    if own:
        return own[0].threshold, f"the run's SLO {own[0].expression}"
    generic = [s for s in slos if s.endpoint is None and s.metric == "p95_ms"]
    if generic:
        return generic[0].threshold, f"the run's SLO {generic[0].expression} (all endpoints)"
    return DEFAULT_SPAWN_SLO_MS, "the guide's container startup bound (30 s); the run set none"


def size(
    plan: CapacityPlan, settings: ProfileSettings, bottleneck: Bottleneck | None = None
) -> Sizing:
    """Every sizing decision for ``settings.platform``; refuses what cannot be sized.

    ``bottleneck`` (planner.bottleneck): when the component that saturates first is one a
    lab runs once whatever its node count (hub, proxy, database), the K3s node count is not
    ``ceil(design / capacity)``: more nodes would not raise capacity, and sizing says so."""
    if settings.platform not in PLATFORMS:
        raise LabcapError(f"--platform {settings.platform!r}: valid: {', '.join(PLATFORMS)}")
    m = measure(plan)
    cap = m.max_users_at_slo
    if settings.expected_users is not None and settings.expected_users <= 0:
        raise LabcapError("--expected-users must be a positive whole number")
    if not cap and settings.expected_users is None:
        raise LabcapError(
            f"{plan.run}: the run gives no capacity figure to size from "
            f"(status {plan.status}); pass --expected-users N to size for N users"
        )
    d: list[Decision] = []
    warnings: list[str] = []
    design = _users(d, m, settings)
    _user_limits(d, settings)
    _hub(d, m, design, settings.platform, warnings)
    mlflow_workers = _mlflow(d, plan, m, design, settings.platform)
    _postgres(d, design, mlflow_workers, settings)
    _nodes(d, m, design, settings.platform, warnings, bottleneck)
    if settings.platform == "k3s":
        _quota(d, design)
    gpu_users = settings.gpu_users
    if gpu_users is None:
        gpu_users = design if settings.gpus else 0
        gpu_source = "every design user may hold a GPU share (default; set --gpu-users)"
    else:
        gpu_source = f"--gpu-users {gpu_users}"
    gpu = plan_gpus(
        settings.gpus,
        settings.gpu_sharing,
        gpu_users,
        replicas=settings.time_slicing_replicas,
        gpu_model=settings.gpu_model,
        mig_profiles=settings.mig_profiles,
        gpu_users_given=settings.gpu_users is not None,
    )
    if gpu.enabled:
        d.append(
            Decision("gpu.users", gpu_users, "users", gpu_source, "planned concurrent GPU users")
        )
        d.append(
            Decision(
                "gpu.capacity",
                gpu.capacity,
                "users",
                f"{gpu.gpus} GPU(s), sharing {gpu.sharing}",
                "whole GPUs, GPUs × time-slicing replicas, or GPUs × MIG devices per GPU; "
                "checked ≥ gpu.users (time-slicing with labcap's default replicas or the "
                "default gpu.users: below it only with a warning)",
            )
        )
    if m.incomplete_note:
        warnings.insert(0, m.incomplete_note)
    warnings.extend(gpu.warnings)
    if settings.platform == "compose" and gpu.sharing == "time-slicing":
        warnings.append(
            "Docker has no time-slicing scheduler: the Compose profile shares each GPU among "
            f"at most {gpu.replicas} user containers via the spawner's device pool"
        )
    return Sizing(settings.platform, settings, m, gpu, tuple(d), tuple(warnings))


def _users(d: list[Decision], m: Measurement, s: ProfileSettings) -> int:
    cap = m.max_users_at_slo
    if s.expected_users is not None:
        planned = s.expected_users
        d.append(
            Decision("users.planned", planned, "users", f"--expected-users {planned}", "as given")
        )
        design = math.ceil(planned * USER_HEADROOM)
        rule = f"planned × {USER_HEADROOM:g} headroom, rounded up"
    else:
        assert cap
        planned = design = cap
        d.append(
            Decision(
                "users.planned",
                planned,
                "users",
                f"max_users_at_slo {cap} of {m.run}",
                "the measured capacity (no --expected-users given)",
            )
        )
        rule = "the measured capacity itself: no headroom above what was measured to hold"
    d.append(Decision("users.design", design, "users", "users.planned", rule))
    return design


def _user_limits(d: list[Decision], s: ProfileSettings) -> None:
    if s.cpu_per_user <= 0 or s.mem_per_user_gib <= 0 or s.storage_per_user_gib <= 0:
        raise LabcapError("--cpu-per-user, --mem-per-user and user storage must be above zero")
    src = "setting (labcap does not measure per-user resource use)"
    d += [
        Decision(
            "user.cpu_limit", s.cpu_per_user, "cores", f"--cpu-per-user {s.cpu_per_user:g}", src
        ),
        Decision(
            "user.cpu_guarantee",
            round(s.cpu_per_user / 4, 3),
            "cores",
            "user.cpu_limit",
            "a quarter of the limit: notebook CPU use is bursty (4:1 overcommit)",
        ),
        Decision(
            "user.mem_limit_gib",
            s.mem_per_user_gib,
            "GiB",
            f"--mem-per-user {s.mem_per_user_gib:g}",
            src,
        ),
        Decision(
            "user.mem_guarantee_gib",
            round(s.mem_per_user_gib / 2, 3),
            "GiB",
            "user.mem_limit_gib",
            "half the limit: memory cannot be reclaimed once used (2:1 overcommit)",
        ),
        Decision(
            "user.storage_gib", s.storage_per_user_gib, "GiB", "setting", "home volume per user"
        ),
    ]


def _hub(d: list[Decision], m: Measurement, design: int, platform: str, warn: list[str]) -> None:
    d.append(
        Decision(
            "hub.replicas",
            1,
            "replicas",
            "JupyterHub",
            "JupyterHub runs as one process (its state is in memory and the database)",
        )
    )
    d.append(
        Decision(
            "hub.active_server_limit", design, "servers", "users.design", "one server per user"
        )
    )
    d.append(_spawn_limit(m, design))
    d.extend(_start_timeout(m, design, platform, warn))
    hub_mem = 1.0 + 0.5 * max(0, math.ceil((design - 100) / 100))
    d.append(
        Decision(
            "hub.cpu_limit",
            1.0 if design <= 100 else 2.0,
            "cores",
            "users.design",
            "rule of thumb: the hub is one Python process; 1 core up to 100 users, 2 above",
        )
    )
    d.append(
        Decision(
            "hub.mem_limit_gib",
            hub_mem,
            "GiB",
            "users.design",
            "rule of thumb: 1 GiB up to 100 users, +0.5 GiB per further 100",
        )
    )
    d.append(
        Decision(
            "proxy.mem_limit_gib",
            0.5 + 0.25 * math.ceil(design / 100),
            "GiB",
            "users.design",
            "rule of thumb: 0.5 GiB + 0.25 GiB per 100 users (routes are kept in memory)",
        )
    )


def _spawn_limit(m: Measurement, design: int) -> Decision:
    key, unit = "hub.concurrent_spawn_limit", "spawns"
    curve = m.spawn_curve
    if not curve:
        return Decision(
            key,
            min(100, max(MIN_SPAWN_LIMIT, design)),
            unit,
            "no hub.spawn_ready measured in this run",
            "JupyterHub's default (100), at most the design users",
        )
    within: SpawnPoint | None = None
    for p in curve:  # by users; the first step over the SLO ends the walk
        if p.p95_ms > m.spawn_slo_ms:
            break
        within = p
    if within is None:
        p = curve[0]
        inflight = p.rps * p.mean_ms / 1000
        value = max(1, math.ceil(inflight / 2))
        return Decision(
            key,
            value,
            unit,
            f"hub.spawn_ready at {p.users} users: p95 {p.p95_ms:g} ms over the SLO "
            f"{m.spawn_slo_ms:g} ms ({m.spawn_slo_source}); {p.rps:g} spawns/s × mean "
            f"{p.mean_ms:g} ms = {inflight:.2f} in flight",
            "even the first step missed the spawn SLO: half its in-flight spawns (Little's law), "
            "rounded up, at least 1",
        )
    inflight = within.rps * within.mean_ms / 1000
    value = min(max(design, MIN_SPAWN_LIMIT), max(MIN_SPAWN_LIMIT, math.ceil(inflight)))
    return Decision(
        key,
        value,
        unit,
        f"hub.spawn_ready at {within.users} users (the largest step with spawn p95 "
        f"{within.p95_ms:g} ms ≤ SLO {m.spawn_slo_ms:g} ms, {m.spawn_slo_source}): "
        f"{within.rps:g} spawns/s × mean {within.mean_ms:g} ms = {inflight:.2f} in flight",
        f"spawns in flight where spawn p95 still met its SLO (Little's law), rounded up, "
        f"between {MIN_SPAWN_LIMIT} and the design users",
    )


def _start_timeout(m: Measurement, design: int, platform: str, warn: list[str]) -> list[Decision]:
    key, unit = "hub.start_timeout_s", "s"
    curve = m.spawn_curve
    if not curve:
        return [
            Decision(
                key,
                START_TIMEOUT_FLOOR_S if platform == "compose" else 300,
                unit,
                "no hub.spawn_ready measured in this run",
                "JupyterHub's default (60 s) on Compose; Zero to JupyterHub's 300 s on K3s "
                "(first image pulls)",
            )
        ]
    covering = [p for p in curve if p.users >= design]
    if covering:
        upto = [p for p in curve if p.users <= covering[0].users]
        worst = max(upto, key=lambda p: p.p95_ms)
        p95_ms = worst.p95_ms
        source = (
            f"hub.spawn_ready p95 {p95_ms:g} ms, the worst of the steps up to "
            f"{covering[0].users} users (design {design})"
        )
    elif len(curve) >= 2 and curve[-1].users > curve[-2].users:
        a, b = curve[-2], curve[-1]
        slope = max(0.0, (b.p95_ms - a.p95_ms) / (b.users - a.users))
        p95_ms = max(max(p.p95_ms for p in curve), b.p95_ms + slope * (design - b.users))
        source = (
            f"hub.spawn_ready p95 extrapolated to {design} users: {p95_ms:.0f} ms, linear from "
            f"{a.p95_ms:g} ms at {a.users} and {b.p95_ms:g} ms at {b.users} users"
        )
        warn.append(
            f"the spawn-time curve stops at {b.users} users, below the design {design}: "
            "start_timeout rests on a linear extrapolation"
        )
    else:
        p95_ms = max(p.p95_ms for p in curve)
        source = f"hub.spawn_ready p95 {p95_ms:g} ms, the worst measured (design {design} users)"
    value = max(START_TIMEOUT_FLOOR_S, 10 * math.ceil(p95_ms * START_TIMEOUT_HEADROOM / 10_000))
    if p95_ms > m.spawn_slo_ms:
        warn.append(
            f"spawn p95 at the design load ({p95_ms / 1000:.0f} s) is over the spawn SLO "
            f"({m.spawn_slo_ms / 1000:g} s): users will wait; plan fewer users per node"
        )
    estimate = Decision(
        "hub.spawn_p95_at_design_s",
        round(p95_ms / 1000, 1),
        unit,
        source,
        "the spawn-to-ready p95 to expect at the design load (an estimate, not a setting)",
    )
    timeout = Decision(
        key,
        value,
        unit,
        "hub.spawn_p95_at_design_s",
        f"p95 × {START_TIMEOUT_HEADROOM:g} headroom, rounded up to 10 s, at least "
        f"{START_TIMEOUT_FLOOR_S} s (JupyterHub's default)",
    )
    return [estimate, timeout]


def _mlflow(
    d: list[Decision], plan: CapacityPlan, m: Measurement, design: int, platform: str
) -> int:
    step = _reference_step(plan, m)
    rows: list[EndpointStats] = [
        e
        for e in plan.endpoints
        if step is not None and e.users == step and e.endpoint.startswith(MLFLOW_PREFIX)
    ]
    ok = [e for e in rows if e.mean_ms is not None and e.requests > e.failures]
    if not ok or step is None:
        total = MLFLOW_DEFAULT_WORKERS
        source, rule = "no MLflow endpoint measured in this run", "MLflow's default (4 workers)"
    else:
        rps = sum(e.rps for e in ok)
        mean_s = sum(e.mean_ms * e.requests for e in ok) / sum(e.requests for e in ok) / 1000  # type: ignore[operator]
        rate = rps / step * design
        inflight = rate * mean_s
        total = min(32, max(2, math.ceil(inflight * MLFLOW_HEADROOM)))
        source = (
            f"mlflow.* at {step} users: {rps:.3g} req/s ({rps / step:.3g} per user), mean "
            f"{mean_s * 1000:.0f} ms; at {design} users {rate:.3g} req/s × {mean_s:.3g} s = "
            f"{inflight:.2f} in flight"
        )
        rule = (
            f"requests in flight at the design load (Little's law) × {MLFLOW_HEADROOM:g}, "
            "rounded up, between 2 and 32 workers"
        )
    d.append(Decision("mlflow.workers_total", total, "workers", source, rule))
    if platform == "k3s":
        replicas = max(1, math.ceil(total / MLFLOW_WORKERS_PER_REPLICA))
        rule_r = f"{MLFLOW_WORKERS_PER_REPLICA} workers per pod; MLflow's server is stateless"
    else:
        replicas, rule_r = 1, "one container on Compose"
    per = math.ceil(total / replicas)
    d.append(Decision("mlflow.replicas", replicas, "replicas", "mlflow.workers_total", rule_r))
    d.append(Decision("mlflow.workers", per, "workers", "mlflow.workers_total", "per replica"))
    d.append(
        Decision(
            "mlflow.cpu_limit",
            max(1.0, per * 0.5),
            "cores",
            "mlflow.workers",
            "half a core per gunicorn worker, at least 1",
        )
    )
    d.append(
        Decision(
            "mlflow.mem_limit_gib",
            0.5 + 0.25 * per,
            "GiB",
            "mlflow.workers",
            "0.5 GiB + 0.25 GiB per worker",
        )
    )
    return replicas * per


def _reference_step(plan: CapacityPlan, m: Measurement) -> int | None:
    """The step whose load profile sizing scales: the capacity step, else the first with data."""
    if m.max_users_at_slo:
        return m.max_users_at_slo
    ran = [s for s in plan.steps if s.verdict in ("pass", "fail", "inconclusive")]
    return ran[0].users if ran else None


def _postgres(d: list[Decision], design: int, mlflow_workers: int, s: ProfileSettings) -> None:
    need = HUB_DB_CONNECTIONS + MLFLOW_DB_CONNECTIONS_PER_WORKER * mlflow_workers
    need += ADMIN_DB_CONNECTIONS
    conns = max(100, 10 * math.ceil(need / 10))
    d.append(
        Decision(
            "postgres.max_connections",
            conns,
            "connections",
            f"hub pool {HUB_DB_CONNECTIONS} + {mlflow_workers} MLflow workers × "
            f"{MLFLOW_DB_CONNECTIONS_PER_WORKER} + admin {ADMIN_DB_CONNECTIONS} = {need}",
            "rounded up to 10, at least PostgreSQL's default 100",
        )
    )
    mem_gib = max(1.0, math.ceil((512 + conns * 8) / 512) / 2)
    d.append(
        Decision(
            "postgres.mem_limit_gib",
            mem_gib,
            "GiB",
            "postgres.max_connections",
            "512 MiB + 8 MiB per allowed connection, rounded up to 0.5 GiB, at least 1 GiB",
        )
    )
    d.append(
        Decision(
            "postgres.shared_buffers_mb",
            int(mem_gib * 1024 / 4),
            "MiB",
            "postgres.mem_limit_gib",
            "a quarter of the memory limit (PostgreSQL's tuning guidance)",
        )
    )
    d.append(
        Decision(
            "postgres.cpu_limit",
            1.0 if design <= 50 else 2.0 if design <= 200 else 4.0,
            "cores",
            "users.design",
            "rule of thumb: 1 core up to 50 users, 2 up to 200, 4 above",
        )
    )
    d.append(Decision("postgres.storage_gib", s.postgres_storage_gib, "GiB", "setting", "data"))
    d.append(
        Decision("mlflow.artifacts_gib", s.mlflow_artifacts_gib, "GiB", "setting", "artifacts")
    )


def _nodes(
    d: list[Decision],
    m: Measurement,
    design: int,
    platform: str,
    warn: list[str],
    bottleneck: Bottleneck | None = None,
) -> None:
    cap = m.max_users_at_slo
    if platform == "compose":
        d.append(
            Decision("cluster.nodes", 1, "nodes", "Docker Compose", "Compose runs on one server")
        )
        if cap and design > cap:
            warn.append(
                f"{design} design users exceed the {cap} users this deployment held within its "
                "SLOs: one Compose server is not enough (see the K3s profile)"
            )
        return
    if not cap:
        d.append(
            Decision(
                "cluster.nodes",
                1,
                "nodes",
                "no capacity figure in the run",
                "start with one node and measure it with labcap run",
            )
        )
        return
    if bottleneck is not None and bottleneck.scales_out_measured == "no" and design > cap:
        why = "; ".join(bottleneck.evidence[:2])
        d.append(
            Decision(
                "cluster.nodes",
                1,
                "nodes",
                f"the run is {bottleneck.component}-bound at {cap} users ({why})",
                f"more nodes will not help: one {bottleneck.component} serves every user on K3s "
                f"too, so ceil({design} design users / {cap} users per node) nodes would still "
                f"hold about {cap} users; relieve the {bottleneck.component} and measure again",
            )
        )
        warn.append(
            f"{design} design users exceed the {cap} users measured, and the "
            f"{bottleneck.component} saturates first ({why}): more nodes will not help"
        )
        return
    if bottleneck is not None and bottleneck.scales_out is False and design > cap:
        warn.append(
            f"the {bottleneck.component} is the likely bottleneck on latency evidence alone "
            f"({bottleneck.evidence[0]}): if it is saturated, more nodes will not help; measure "
            "with --target docker (or k8s) for its resource use"
        )
    nodes = max(1, math.ceil(design / cap))
    bound = "" if m.limit_reached else " (the run never found its limit: an upper bound)"
    d.append(
        Decision(
            "cluster.nodes",
            nodes,
            "nodes",
            f"max_users_at_slo {cap} measured on one server{bound}",
            f"ceil({design} design users / {cap} users per node)",
        )
    )


def _quota(d: list[Decision], design: int) -> None:
    """The user namespace's ResourceQuota: design users × the per-user figures (K3s only)."""
    v = {x.key: x.value for x in d}
    rule = "users.design × the per-user figure"
    for key, per, unit in (
        ("requests_cpu", "user.cpu_guarantee", "cores"),
        ("limits_cpu", "user.cpu_limit", "cores"),
        ("requests_memory_gib", "user.mem_guarantee_gib", "GiB"),
        ("limits_memory_gib", "user.mem_limit_gib", "GiB"),
        ("requests_storage_gib", "user.storage_gib", "GiB"),
    ):
        value = round(design * v[per], 3)
        d.append(Decision(f"quota.{key}", value, unit, f"{design} × {per} {v[per]:g}", rule))
    d.append(Decision("quota.pods", design, "pods", "users.design", "one pod per user server"))
    d.append(Decision("quota.pvcs", design, "claims", "users.design", "one home claim per user"))
