"""Side-by-side comparison of runs (Docker vs K3s, before vs after): one self-contained HTML.

The table is the guide's own "Performance Comparison" (GPU utilisation,
container/pod startup, API latency, max concurrent users), filled with what
each run measured; the first run is the baseline for the deltas.

Every figure is compared at the same step (the same number of users) in every run, the
figure the charts plot at that x, so a delta's sign is the chart's. A latency delta carries
the CI gate's significance (``planner.gate.compare_runs``, run both ways: is the other run
slower, is it faster); it is coloured only when significant, green when better, red when
worse. A capacity delta is significant when the runs' capacity bands do not overlap.
Lower bounds keep their "≥", and a capacity below the first step reads "< N users".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.model import ALL_ENDPOINTS, Manifest
from labcap.planner.capacity import CapacityPlan, plan_capacity
from labcap.planner.gate import Comparison, GateThresholds, MaxRegression, compare_runs
from labcap.reports.html import chart_sections, template
from labcap.reports.wording import (
    add_slo_lines,
    capacity_interval,
    capacity_text,
    integer_axis,
    latency_slos,
)
from labcap.store import RunDir, atomic_write_bytes

# Endpoints that time a server's lifecycle rather than an API call: kept out of "API latency".
LIFECYCLE_PREFIXES = ("hub.spawn", "hub.stop", "startup.")
STARTUP_ENDPOINTS = ("hub.spawn_ready", "startup.ready")

# the gate's statistics, on p95 only: the margin does not matter here, the test and the
# interval do (see ``latency_significance``)
SIGNIFICANCE = GateThresholds(max_regressions=(MaxRegression("p95", 0.10),))
MINUS = "−"  # U+2212: the sign a reader sees; the data attributes carry plain numbers


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


@dataclass(frozen=True)
class Significance:
    """A delta's mark: ``state`` is slower/faster (significant), same (tested, not
    significant) or untested; ``why`` is the numbers or the reason, for the tooltip."""

    state: str
    why: str

    @property
    def significant(self) -> bool:
        return self.state in ("slower", "faster", "lower", "higher")


def is_api(endpoint: str) -> bool:
    return endpoint != ALL_ENDPOINTS and not endpoint.startswith(LIFECYCLE_PREFIXES)


def _api_endpoints(plan: CapacityPlan) -> list[Any]:
    return [e for e in plan.endpoints if is_api(e.endpoint)]


def reference_users(plans: list[CapacityPlan]) -> int | None:
    """The step every figure of the table is taken at, the same in every run: the largest
    user count every run held within its SLOs, else the smallest step all of them ran."""
    ran = [{s.users for s in p.steps if s.verdict != "not-run"} for p in plans]
    common = set.intersection(*ran) if ran else set()
    if not common:
        return None
    passed = [{s.users for s in p.steps if s.verdict == "pass"} for p in plans]
    held = common & set.intersection(*passed)
    return max(held) if held else min(common)


def _stats_at(plan: CapacityPlan, users: int | None, endpoint: str) -> Any | None:
    return next((e for e in plan.endpoints if e.users == users and e.endpoint == endpoint), None)


def measured_values(plan: CapacityPlan, run: RunDir, users: int | None = None) -> dict[str, Any]:
    """The comparison table's row values for one run at ``users`` (default: its largest
    step within SLO, else its first step); None: not measured. ``api_p95_ms`` maps each
    API endpoint to its p95 there."""
    if users is None:
        users = reference_users([plan])
    api = {
        e.endpoint: e.p95_ms
        for e in _api_endpoints(plan)
        if e.users == users and e.p95_ms is not None
    }
    startup = [
        e.p95_ms
        for e in plan.endpoints
        if e.endpoint in STARTUP_ENDPOINTS and e.users == users and e.p95_ms is not None
    ]
    gpu = run.table("gpu_samples")
    gpu_util = None
    if gpu is not None and len(gpu) and "gpu_util_pct" in gpu.columns:
        gpu_util = float(gpu["gpu_util_pct"].dropna().mean())
    return {
        "gpu_util_pct": gpu_util,
        "startup_p95_s": startup[0] / 1000 if startup else None,
        "api_p95_ms": api,
        "max_users_at_slo": plan.max_users_at_slo,
    }


def comparability_warnings(manifests: list[Manifest], statuses: bool = True) -> list[str]:
    """Why the runs may not be comparable; empty when they are. ``statuses=False`` leaves
    out the runs' status (for a caller that judges partial runs itself, as the gate does)
    and keeps only how they were measured: scenario, steps, SLOs."""
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
        if statuses and m.status != "complete":
            warnings.append(f"run {i} is {m.status}, not complete")
    if statuses and base.status != "complete":
        warnings.append(f"run 1 is {base.status}, not complete")
    return warnings


# --- significance ----------------------------------------------------------------------------


def latency_significance(
    baseline: RunDir, current: RunDir, th: GateThresholds = SIGNIFICANCE
) -> tuple[dict[tuple[int, str], tuple[Comparison, Comparison]], str | None]:
    """The gate's p95 comparisons of CURRENT against BASELINE both ways, per (users,
    endpoint): (is current slower, is current faster). Empty with the reason when the
    gate cannot compare the runs at all."""
    slower = compare_runs(baseline, current, th)
    if not slower.comparisons:
        return {}, "; ".join(slower.reasons) or "the runs could not be compared"
    faster = compare_runs(current, baseline, th)
    back = {(c.users, c.endpoint): c for c in faster.comparisons if c.metric == "p95"}
    out = {}
    for c in slower.comparisons:
        if c.metric == "p95" and (c.users, c.endpoint) in back:
            out[(c.users, c.endpoint)] = (c, back[(c.users, c.endpoint)])
    return out, None


def judge_latency(
    delta_ms: float,
    pair: tuple[Comparison, Comparison] | None,
    untested_why: str,
    th: GateThresholds = SIGNIFICANCE,
) -> Significance:
    """Significant when the gate's one-sided test in the delta's direction has p < alpha,
    its interval lies wholly on that side of no change, and the change is above the gate's
    noise floor (``min_effect_ms``); the delta's sign is the plotted figures'."""
    if pair is None:
        return Significance("untested", untested_why)
    slower, faster = pair
    if slower.p_value is None or faster.p_value is None:
        return Significance("untested", f"not tested: {slower.reason or faster.reason}")
    numbers = (
        f"gate statistics over {slower.windows[0]}+{slower.windows[1]} steady windows: "
        f"one-sided Mann-Whitney p={slower.p_value:.2g} (slower), p={faster.p_value:.2g} "
        f"(faster); {th.confidence:.0%} interval of the change "
        f"{_pct(slower.effect_ci[0])}..{_pct(slower.effect_ci[1])}"
    )
    alpha, floor = th.alpha, th.min_effect_ms
    if delta_ms > floor and slower.p_value < alpha and slower.effect_ci[0] > 0:
        return Significance("slower", f"significantly slower (p < {alpha:g}); {numbers}")
    if -delta_ms > floor and faster.p_value < alpha and faster.effect_ci[0] > 0:
        return Significance("faster", f"significantly faster (p < {alpha:g}); {numbers}")
    small = f", or within the {floor:g} ms noise floor" if abs(delta_ms) <= floor else ""
    return Significance("same", f"not significant (p ≥ {alpha:g}{small}); {numbers}")


def _pct(x: float | None) -> str:
    return "?" if x is None else _signed(100 * x, "%", ".1f")


def judge_capacity(base: CapacityPlan, other: CapacityPlan) -> Significance:
    """A capacity is an interval [last passing step, first failing step); two runs differ
    when their intervals do not overlap."""
    b, o = capacity_interval(base), capacity_interval(other)
    if b is None or o is None:
        return Significance("untested", "one run has no capacity figure")
    shown = f"{capacity_text(other, '')} against {capacity_text(base, '')}"
    if o[1] is not None and o[1] <= b[0]:
        return Significance("lower", f"lower: {shown}, bands do not overlap")
    if b[1] is not None and o[0] >= b[1]:
        return Significance("higher", f"higher: {shown}, bands do not overlap")
    if b == o:
        return Significance("same", f"the same band: {shown}")
    return Significance("same", f"the bands overlap ({shown}): not a significant change")


# --- cells -----------------------------------------------------------------------------------


def _signed(x: float, unit: str = "", fmt: str = ".3g") -> str:
    if x == 0:
        return f"±0{unit}"
    return f"{'+' if x > 0 else MINUS}{format(abs(x), fmt)}{unit}"


def _tone(sig: Significance, worse_when: str) -> str:
    if not sig.significant:
        return "neutral"
    return "worse" if sig.state == worse_when else "better"


def latency_cell(
    base_ms: float | None,
    value_ms: float | None,
    sig: Significance,
    *,
    scale: float = 1.0,
    unit: str = "ms",
    chart: str = "",
    users: int | None = None,
    run: str = "",
    base_run: str = "",
) -> dict[str, Any]:
    """A latency figure and its delta against the baseline (lower is better)."""
    cell: dict[str, Any] = {
        "value": None if value_ms is None else f"{value_ms * scale:.4g} {unit}",
        "delta": None,
    }
    if base_ms is None or value_ms is None:
        return cell
    diff = value_ms - base_ms
    rel = f" ({_signed(100 * diff / base_ms, ' %', '.0f')})" if base_ms else ""
    tone = _tone(sig, "slower")
    if sig.significant and (sig.state == "slower") != (diff > 0):
        tone = "neutral"  # never a colour against the sign (cannot happen; a guard)
    cell["delta"] = {
        "text": f"{_signed(diff * scale, ' ' + unit)}{rel}",
        "tone": tone,
        "mark": sig,
        "attrs": {
            "data-kind": "latency",
            "data-better": "lower",
            "data-base": f"{base_ms:.6g}",
            "data-value": f"{value_ms:.6g}",
            "data-significant": str(sig.significant).lower(),
            "data-chart": chart,
            "data-x": "" if users is None else str(users),
            "data-run": run,
            "data-base-run": base_run,
        },
    }
    return cell


def capacity_cell(base: CapacityPlan, plan: CapacityPlan, first: bool) -> dict[str, Any]:
    cell: dict[str, Any] = {"value": capacity_text(plan, ""), "delta": None}
    if first:
        return cell
    b, o = capacity_interval(base), capacity_interval(plan)
    sig = judge_capacity(base, plan)
    if b is None or o is None:
        return cell
    exact = b[1] is not None and o[1] is not None and b[0] > 0 and o[0] > 0
    if exact or b == o:
        text = _signed(o[0] - b[0], " users")
    else:
        text = {"lower": f"{MINUS} lower", "higher": "+ higher"}.get(sig.state, "overlapping")
    cell["delta"] = {
        "text": text,
        "tone": _tone(sig, "lower"),
        "mark": sig,
        "attrs": {
            "data-kind": "capacity",
            "data-better": "higher",
            "data-base-low": str(b[0]),
            "data-base-high": "" if b[1] is None else str(b[1]),
            "data-value-low": str(o[0]),
            "data-value-high": "" if o[1] is None else str(o[1]),
            "data-significant": str(sig.significant).lower(),
        },
    }
    return cell


def plain_cell(metric: Metric, base: float | None, value: float | None) -> dict[str, Any]:
    """A figure labcap has no test for (GPU utilisation): its delta is never coloured."""
    cell: dict[str, Any] = {
        "value": None if value is None else f"{value:.4g} {metric.unit}",
        "delta": None,
    }
    if base is not None and value is not None:
        sig = Significance("untested", "no statistical test for this figure: shown uncoloured")
        cell["delta"] = {
            "text": _signed(value - base, f" {metric.unit}"),
            "tone": "neutral",
            "mark": sig,
            "attrs": {"data-kind": "untested", "data-significant": "false"},
        }
    return cell


# --- charts ----------------------------------------------------------------------------------


def chart_id(endpoint: str) -> str:
    return "latency-" + re.sub(r"[^A-Za-z0-9_-]+", "-", endpoint)


def _figures(
    plans: list[CapacityPlan], labels: list[str], endpoints: list[str]
) -> list[tuple[str, str, Any]]:
    import plotly.graph_objects as go

    users = sorted({s.users for p in plans for s in p.steps if s.verdict != "not-run"})
    figs = []
    for ep in endpoints:
        fig = go.Figure()
        for plan, label in zip(plans, labels, strict=True):
            rows = sorted(
                (e for e in plan.endpoints if e.endpoint == ep and e.p95_ms is not None),
                key=lambda e: e.users,
            )
            fig.add_scatter(
                x=[e.users for e in rows],
                y=[e.p95_ms for e in rows],
                mode="lines+markers",
                name=label,
            )
        add_slo_lines(fig, latency_slos(plans[0].slos, "p95_ms", [ep]), users)
        fig.update_layout(
            xaxis_title="concurrent users",
            yaxis_title=f"p95 latency of {ep} (ms)",
            yaxis_type="log",
            xaxis=integer_axis(users),
        )
        figs.append((chart_id(ep), f"p95 latency vs users: {ep}", fig))
    thr = go.Figure()
    for plan, label in zip(plans, labels, strict=True):
        overall = [e for e in plan.endpoints if e.endpoint == ALL_ENDPOINTS]
        thr.add_scatter(
            x=[e.users for e in overall],
            y=[e.rps for e in overall],
            mode="lines+markers",
            name=label,
        )
    thr.update_layout(
        xaxis_title="concurrent users",
        yaxis_title="requests per second",
        xaxis=integer_axis(users),
    )
    figs.append(("throughput", "Throughput vs users (all requests)", thr))
    return figs


# --- the page --------------------------------------------------------------------------------


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
    ref = reference_users(plans)
    endpoints = sorted(
        {e.endpoint for p in plans for e in p.endpoints if e.endpoint != ALL_ENDPOINTS}
    )
    tests = [({}, None)] + [latency_significance(runs[0], r) for r in runs[1:]]

    def latency_row(ep: str, users: int | None, *, scale: float = 1.0, unit: str = "ms"):
        base = _stats_at(plans[0], users, ep)
        base_ms = base.p95_ms if base else None
        cells = []
        for i, plan in enumerate(plans):
            row = _stats_at(plan, users, ep)
            value = row.p95_ms if row else None
            if i == 0:
                cells.append(latency_cell(None, value, Significance("untested", ""), scale=scale,
                                          unit=unit))  # fmt: skip
                continue
            pairs, why_not = tests[i]
            untested = f"not tested: {why_not}" if why_not else "not tested: no gate comparison"
            sig = judge_latency(
                (value or 0) - (base_ms or 0), pairs.get((users, ep)) if users else None, untested
            )
            cells.append(
                latency_cell(base_ms, value, sig, scale=scale, unit=unit, chart=chart_id(ep),
                             users=users, run=labels[i], base_run=labels[0])
            )  # fmt: skip
        return cells

    rows = []
    values = [measured_values(p, r, ref) for p, r in zip(plans, runs, strict=True)]
    gpu = METRICS[0]
    rows.append(
        {
            "label": gpu.label,
            "metric": gpu,
            "cells": [
                plain_cell(gpu, values[0]["gpu_util_pct"] if i else None, v["gpu_util_pct"])
                for i, v in enumerate(values)
            ],
        }
    )
    for ep in (e for e in endpoints if e in STARTUP_ENDPOINTS):
        rows.append(
            {
                "label": f"{METRICS[1].label}: {ep}",
                "metric": METRICS[1],
                "cells": latency_row(ep, ref, scale=1 / 1000, unit="s"),
            }
        )
    for ep in (e for e in endpoints if is_api(e)):
        rows.append(
            {
                "label": f"{METRICS[2].label}: {ep}",
                "metric": METRICS[2],
                "cells": latency_row(ep, ref),
            }
        )
    rows.append(
        {
            "label": METRICS[3].label,
            "metric": METRICS[3],
            "cells": [capacity_cell(plans[0], p, i == 0) for i, p in enumerate(plans)],
        }
    )
    common = sorted(
        set.intersection(*({s.users for s in p.steps if s.verdict != "not-run"} for p in plans))
    )
    per_step = [
        {"endpoint": ep, "users": u, "cells": latency_row(ep, u),
         "slo": next((t for _, t in latency_slos(plans[0].slos, "p95_ms", [ep])), None)}
        for ep in endpoints
        for u in common
        if any(_stats_at(p, u, ep) for p in plans)
    ]  # fmt: skip
    charts = chart_sections(_figures(plans, labels, endpoints), height=360)
    untested = sorted({t[1] for t in tests[1:] if t[1]})
    return template("compare.html.j2").render(
        labels=labels,
        plans=plans,
        capacities=[capacity_text(p) for p in plans],
        manifests=manifests,
        rows=rows,
        per_step=per_step,
        reference_users=ref,
        charts=charts,
        warnings=comparability_warnings(manifests),
        untested=untested,
        th=SIGNIFICANCE,
    )


def write_comparison(run_paths: list[str | Path], out: str | Path) -> Path:
    target = Path(out)
    if target.is_dir():
        raise LabcapError(f"{target} is a directory: give a file name such as compare.html")
    if not target.parent.exists():
        raise LabcapError(f"{target.parent}: no such directory")
    atomic_write_bytes(target, render_comparison(run_paths).encode("utf-8"))
    return target
