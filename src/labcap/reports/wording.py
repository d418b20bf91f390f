"""How the reports say a capacity, and the chart pieces every report shares.

One wording for the run report and the comparison: a capacity the run never
reached is a lower bound ("≥ 40 users"), a capacity below the first step is
"< 5 users" (never "0 users"), and a capacity between a passing and a failing
step is the passing step's figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from labcap.slo import Slo


def capacity_interval(plan: Any) -> tuple[int, int | None] | None:
    """Where the capacity lies, as [low, high): the last passing step's users (0 when the
    first step failed) up to the first failing step's (None: not reached)."""
    if plan.max_users_at_slo is None:
        return None
    if not plan.limit_reached or not plan.band or plan.band[1] is None:
        return (plan.max_users_at_slo, None)
    return (plan.max_users_at_slo, plan.band[1])


def _users(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"


def capacity_text(plan: Any, suffix: str = " at SLO") -> str:
    """ "≥ 40 users at SLO", "20 users at SLO", "< 5 users at SLO" or "no capacity figure"."""
    interval = capacity_interval(plan)
    if interval is None:
        return "no capacity figure"
    low, high = interval
    if high is None:
        return f"≥ {_users(low)}{suffix}"
    if low == 0:
        return f"< {_users(high)}{suffix}"
    return f"{_users(low)}{suffix}"


def integer_axis(values: Iterable[float], *, at_values: bool = True) -> dict[str, Any]:
    """Axis settings for a count of users: ticks on whole numbers only (at the step counts
    themselves when there are few and ``at_values``), so no tick reads 2.5 users."""
    vals = sorted({int(v) for v in values if v is not None and math.isfinite(v)})
    if at_values and vals and len(vals) <= 12:
        return {"tickmode": "array", "tickvals": vals, "ticktext": [str(v) for v in vals]}
    top = vals[-1] if vals else 1
    return {
        "tickmode": "linear",
        "tick0": 0,
        "dtick": max(1, math.ceil(top / 8)),
        "tickformat": "d",
    }


def latency_slos(
    slos: Sequence[Slo], metric: str, endpoints: Sequence[str]
) -> list[tuple[str, float]]:
    """The ``metric`` thresholds that apply to ``endpoints`` (their own, else the run-wide
    one), as (label, ms): one per distinct threshold, naming the endpoints it binds."""
    own = {s.endpoint: s.threshold for s in slos if s.metric == metric and s.endpoint}
    general = next((s.threshold for s in slos if s.metric == metric and not s.endpoint), None)
    by_threshold: dict[float, list[str]] = {}
    for ep in endpoints:
        t = own.get(ep, general)
        if t is not None:
            by_threshold.setdefault(t, []).append(ep)
    name = metric.replace("_ms", "")
    out = []
    for t, eps in sorted(by_threshold.items()):
        who = "" if len(eps) == len(endpoints) and t == general else f" ({', '.join(eps)})"
        out.append((f"SLO {name} ≤ {t:g} ms{who}", t))
    return out


def add_slo_lines(fig: Any, lines: list[tuple[str, float]], users: Sequence[int]) -> None:
    """Each SLO threshold as a dashed horizontal trace across the users plotted (a trace,
    not a shape: it sits in data coordinates on log axes too, and has a legend entry)."""
    if not users:
        return
    xs = [min(users), max(users)]
    for label, threshold in lines:
        fig.add_scatter(
            x=xs,
            y=[threshold, threshold],
            mode="lines",
            name=label,
            line={"dash": "dash", "color": "#b3261e", "width": 1.5},
            hovertemplate=f"{label}<extra></extra>",
            meta={"slo": True},
        )
