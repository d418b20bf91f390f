"""Side-by-side comparison of runs (Docker vs K3s, before vs after): one self-contained HTML.

The table is the guide's own "Performance Comparison" (GPU utilisation,
container/pod startup, API latency, max concurrent users), filled with what
each run measured; the first run is the baseline for the deltas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.model import ALL_ENDPOINTS, Manifest
from labcap.planner.capacity import CapacityPlan, plan_capacity
from labcap.reports.html import chart_sections, template
from labcap.store import RunDir, atomic_write_bytes

# Endpoints that time a server's lifecycle rather than an API call: kept out of "API latency".
LIFECYCLE_PREFIXES = ("hub.spawn", "hub.stop", "startup.")
STARTUP_ENDPOINTS = ("hub.spawn_ready", "startup.ready")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    guide_docker: str
    guide_k3s: str


METRICS = (
    Metric("gpu_util_pct", "GPU utilisation", "%", True, "85-90%", "95-98% (with MIG)"),
    Metric("startup_p95_s", "Container / pod startup (p95)", "s", False, "10-30 s", "20-40 s"),
    Metric("api_p95_ms", "API latency (p95)", "ms", False, "50-100 ms", "30-80 ms"),
    Metric("max_users_at_slo", "Max concurrent users at SLO", "users", True, "~50", "200+"),
)


def _api_endpoints(plan: CapacityPlan) -> list[Any]:
    return [
        e
        for e in plan.endpoints
        if e.endpoint != ALL_ENDPOINTS and not e.endpoint.startswith(LIFECYCLE_PREFIXES)
    ]


def _reference_step(plan: CapacityPlan) -> int | None:
    """The step the point figures come from: the largest one within SLO, else the first run."""
    passing = [s for s in plan.steps if s.verdict == "pass"]
    if plan.max_users_at_slo and passing:
        return next(s.index for s in passing if s.users == plan.max_users_at_slo)
    ran = [s for s in plan.steps if s.verdict != "not-run"]
    return ran[0].index if ran else None


def measured_values(plan: CapacityPlan, run: RunDir) -> dict[str, float | None]:
    """The comparison table's row values for one run (None: not measured)."""
    step = _reference_step(plan)
    api = [e for e in _api_endpoints(plan) if e.step_index == step and e.p95_ms is not None]
    # requests-weighted mean of per-endpoint p95s: one slow, rare call does not dominate
    weight = sum(e.requests for e in api)
    api_p95 = sum(e.p95_ms * e.requests for e in api) / weight if weight else None
    startup = [
        e.p95_ms
        for e in plan.endpoints
        if e.endpoint in STARTUP_ENDPOINTS and e.step_index == step and e.p95_ms is not None
    ]
    gpu = run.table("gpu_samples")
    gpu_util = None
    if gpu is not None and len(gpu) and "gpu_util_pct" in gpu.columns:
        gpu_util = float(gpu["gpu_util_pct"].dropna().mean())
    return {
        "gpu_util_pct": gpu_util,
        "startup_p95_s": startup[0] / 1000 if startup else None,
        "api_p95_ms": round(api_p95, 3) if api_p95 is not None else None,
        "max_users_at_slo": plan.max_users_at_slo,
    }


def comparability_warnings(manifests: list[Manifest]) -> list[str]:
    """Why the runs may not be comparable; empty when they are."""
    base = manifests[0]
    base_slos = sorted(s.expression for s in base.slos)
    warnings = []
    for i, m in enumerate(manifests[1:], start=2):
        if m.scenario_name != base.scenario_name:
            warnings.append(
                f"run {i} ran scenario {m.scenario_name!r}, run 1 {base.scenario_name!r}"
            )
        users = [s.users for s in m.plan.steps]
        base_users = [s.users for s in base.plan.steps]
        if users != base_users:
            warnings.append(f"run {i} stepped through {users} users, run 1 through {base_users}")
        slos = [s.expression for s in m.slos]
        if sorted(slos) != base_slos:
            warnings.append(f"run {i} was judged on other SLOs ({', '.join(slos)})")
        if m.status != "complete":
            warnings.append(f"run {i} is {m.status}, not complete")
    if base.status != "complete":
        warnings.append(f"run 1 is {base.status}, not complete")
    return warnings


def _delta(metric: Metric, base: float | None, value: float | None) -> dict[str, Any]:
    if base is None or value is None:
        return {"text": "", "tone": "neutral"}
    diff = value - base
    text = f"{diff:+.3g} ({100 * diff / base:+.0f}%)" if base else f"{diff:+.3g}"
    if abs(diff) < 1e-9:
        tone = "neutral"
    else:
        tone = "better" if (diff > 0) == metric.higher_is_better else "worse"
    return {"text": text, "tone": tone}


def _figures(plans: list[CapacityPlan], labels: list[str]) -> list[tuple[str, str, Any]]:
    import plotly.graph_objects as go

    lat, thr = go.Figure(), go.Figure()
    for plan, label in zip(plans, labels, strict=True):
        overall = [e for e in plan.endpoints if e.endpoint == ALL_ENDPOINTS]
        lat.add_scatter(
            x=[e.users for e in overall],
            y=[e.p95_ms for e in overall],
            mode="lines+markers",
            name=label,
        )
        thr.add_scatter(
            x=[e.users for e in overall],
            y=[e.rps for e in overall],
            mode="lines+markers",
            name=label,
        )
    lat.update_layout(
        xaxis_title="concurrent users",
        yaxis_title="p95 latency, all endpoints (ms)",
        yaxis_type="log",
    )
    thr.update_layout(xaxis_title="concurrent users", yaxis_title="requests per second")
    return [
        ("latency", "p95 latency vs users", lat),
        ("throughput", "Throughput vs users", thr),
    ]


def render_comparison(run_paths: list[str | Path]) -> str:
    if len(run_paths) < 2:
        raise LabcapError("a comparison needs at least two run directories")
    runs = [RunDir.open(p) for p in run_paths]
    plans = [plan_capacity(r) for r in runs]
    manifests = [r.read_manifest() for r in runs]
    labels = [
        f"{i + 1}: {r.path.name} ({m.target})"
        for i, (r, m) in enumerate(zip(runs, manifests, strict=True))
    ]
    values = [measured_values(p, r) for p, r in zip(plans, runs, strict=True)]
    rows = []
    for metric in METRICS:
        base = values[0][metric.key]
        cells = []
        for v in values:
            cells.append({"value": v[metric.key], **_delta(metric, base, v[metric.key])})
        rows.append({"metric": metric, "cells": cells})
    charts = chart_sections(_figures(plans, labels), height=380)
    return template("compare.html.j2").render(
        labels=labels,
        plans=plans,
        manifests=manifests,
        rows=rows,
        charts=charts,
        warnings=comparability_warnings(manifests),
    )


def write_comparison(run_paths: list[str | Path], out: str | Path) -> Path:
    target = Path(out)
    if target.is_dir():
        raise LabcapError(f"{target} is a directory: give a file name such as compare.html")
    if not target.parent.exists():
        raise LabcapError(f"{target.parent}: no such directory")
    atomic_write_bytes(target, render_comparison(run_paths).encode("utf-8"))
    return target
