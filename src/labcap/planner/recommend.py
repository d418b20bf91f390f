"""From a capacity plan to a recommendation: measure, apply the policy, explain.

``plan_and_recommend`` is what ``labcap plan`` calls: the capacity plan of a
run, the projection of the lab's expected users against it, and the
recommendation (action, the rules that fired with the numbers behind them,
the binding constraint and a confidence that says why it is not higher).

How the action is chosen from the fired rules:

1. any fired rule whose action is ``insufficient-data`` decides: the run
   cannot carry a confident answer;
2. measured capacity dominates: the guide's rules of thumb on user counts (rules
   whose only inputs are the expected users, ``GUIDE_INPUTS``) vote only when no
   rule on a measured quantity fired; otherwise they are listed but do not count;
3. each voting rule adds its weight to its action and the heaviest wins; a tie
   goes to the action backed by the heaviest single rule, and if that ties too,
   to the simpler deployment (the order of ``DECISIONS``); the tie-break is
   stated as a reason (rule ``tie-break``);
4. no fired rule at all is ``insufficient-data`` as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from labcap.errors import LabcapError
from labcap.planner.bottleneck import Bottleneck, attribute_run
from labcap.planner.capacity import CapacityPlan, Projection, plan_capacity, project
from labcap.planner.gpu_evidence import plan_gpu_evidence
from labcap.planner.policy import (
    DECISIONS,
    INSUFFICIENT,
    METRICS,
    Policy,
    RuleOutcome,
    evaluate_rules,
    load_policy,
)
from labcap.planner.scheduling import SchedulingEvidence, scheduling_evidence
from labcap.planner.settings import PlanOptions
from labcap.store import RunDir
from labcap.units import parse_user_count


@dataclass(frozen=True)
class Reason:
    """One fired rule: what it votes for, the measured inputs and its condition."""

    rule: str
    action: str
    weight: float
    measured: Mapping[str, Any]
    threshold: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "action": self.action,
            "weight": self.weight,
            "measured": {k: _json_value(v) for k, v in self.measured.items()},
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True)
class NotEvaluated:
    rule: str
    action: str
    missing: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "action": self.action, "missing": list(self.missing)}


@dataclass(frozen=True)
class BindingConstraint:
    """The SLO that failed first; among several at that step, the one missed by most."""

    slo: str
    endpoint: str
    kind: str  # latency | error_rate | startup
    measured: float | None
    threshold: float
    at_users: int  # the first failing step

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Confidence:
    level: str  # high | medium | low
    why: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "why": list(self.why)}


@dataclass(frozen=True)
class Recommendation:
    """What to do, and every reason: the record deploy profiles and reports consume."""

    action: str
    reasons: tuple[Reason, ...]
    binding_constraint: BindingConstraint | None
    confidence: Confidence
    not_evaluated: tuple[NotEvaluated, ...]
    scores: Mapping[str, float]
    summary: str
    policy_sources: tuple[str, ...]
    measurements: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    decided_by: str | None = None  # measurement | guide | None (no action rule fired)
    guide_outvoted: tuple[str, ...] = ()  # guide rules that fired but the measurement decided

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": [r.to_dict() for r in self.reasons],
            "binding_constraint": (
                self.binding_constraint.to_dict() if self.binding_constraint else None
            ),
            "confidence": self.confidence.to_dict(),
            "not_evaluated": [n.to_dict() for n in self.not_evaluated],
            "scores": dict(self.scores),
            "summary": self.summary,
            "policy": list(self.policy_sources),
            "measurements": {k: _json_value(v) for k, v in self.measurements.items()},
            "decided_by": self.decided_by,
            "guide_outvoted": list(self.guide_outvoted),
        }


def _json_value(v: Any) -> Any:
    # --json output must stay valid JSON: infinity ("never") becomes null
    return None if isinstance(v, float) and not math.isfinite(v) else v


# --- measurements ----------------------------------------------------------------------------


def binding_constraint(plan: CapacityPlan, policy: Policy) -> BindingConstraint | None:
    """The SLO that binds first, classified as latency, error_rate or startup."""
    if not plan.limit_reached or not plan.binding:
        return None
    bad = next(s for s in plan.steps if s.verdict in ("fail", "no-data"))
    # only breaches measured on enough requests bind: never a figure without samples
    checks = [c for c in plan.binding if c.measured is not None]
    if bad.verdict == "no-data":
        # nothing succeeded: the failures, not a latency without samples, bind
        checks = [c for c in checks if c.slo.startswith("error_pct")] or checks
    if not checks:
        return None
    check = max(checks, key=_excess)
    if check.slo.split(":")[-1].startswith("error_pct") or bad.verdict == "no-data":
        kind = "error_rate"
    elif policy.is_startup(check.endpoint):
        kind = "startup"
    else:
        kind = "latency"
    return BindingConstraint(
        check.slo, check.endpoint, kind, check.measured, check.threshold, bad.users
    )


def _excess(check: Any) -> float:
    if check.measured is None:
        return math.inf
    if check.threshold <= 0:
        return math.inf if check.measured > 0 else 0.0
    return check.measured / check.threshold


def gather_measurements(
    plan: CapacityPlan,
    run: RunDir | None,
    policy: Policy,
    projection: Projection,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every quantity in ``METRICS``; None where this run did not measure it.

    ``extra`` supplies quantities from collectors labcap reads elsewhere (GPU);
    its names must be known metrics.
    """
    values: dict[str, Any] = dict.fromkeys(METRICS)
    steps = plan.steps
    ran = [s for s in steps if s.verdict != "not-run"]
    passing = [s for s in steps if s.verdict == "pass"]
    values.update(
        run_status=plan.status,
        steps_planned=len(steps),
        steps_not_run=len(steps) - len(ran),
        steps_no_data=sum(s.verdict == "no-data" for s in steps),
        steps_with_data=sum(s.verdict in ("pass", "fail", "inconclusive") for s in steps),
        steps_inconclusive=_inconclusive_to_limit(steps),
        error_pct_passing=_error_pct(passing),
        error_pct_first_step=(
            _error_pct(steps[:1]) if steps and steps[0].verdict != "not-run" else None
        ),
        max_users_at_slo=plan.max_users_at_slo,
        limit_reached=plan.limit_reached,
        knee_users=plan.knee.users if plan.knee else None,
    )
    if plan.band and plan.band[1] is not None:
        lower, upper = plan.band
        values["capacity_upper_users"] = upper
        values["band_width_pct"] = round(100 * (upper - lower) / lower, 1) if lower else None
    b = binding_constraint(plan, policy)
    values["binding_kind"] = (
        b.kind if b else ("none" if plan.max_users_at_slo is not None else None)
    )
    values.update(_demand(plan.max_users_at_slo, projection, plan.limit_reached))
    if run is not None:
        values.update(_resources(plan, run))
    for name, value in (extra or {}).items():
        values[name] = _checked_measurement(name, value)
    return values


def _checked_measurement(name: str, value: Any) -> Any:
    spec = METRICS.get(name)
    if spec is None:
        raise LabcapError(f"unknown measurement {name!r}; known: {', '.join(METRICS)}")
    ok = (
        value is None
        or (
            spec.kind == "number" and isinstance(value, int | float) and not isinstance(value, bool)
        )
        or (spec.kind == "bool" and isinstance(value, bool))
        or (spec.kind == "enum" and value in spec.choices)
    )
    if not ok:
        raise LabcapError(f"measurement {name}={value!r} is not a {spec.kind}")
    return value


def _inconclusive_to_limit(steps: tuple[Any, ...]) -> int:
    """Inconclusive steps (too few requests to judge an SLO) up to the first failing one."""
    n = 0
    for s in steps:
        if s.verdict in ("fail", "no-data", "not-run"):
            break
        n += s.verdict == "inconclusive"
    return n


def _error_pct(steps: list[Any]) -> float | None:
    requests = sum(s.requests for s in steps)
    if not requests:
        return None
    return round(100 * sum(s.failures for s in steps) / requests, 3)


def _demand(
    capacity: int | None, projection: Projection, limit_reached: bool = True
) -> dict[str, Any]:
    n = projection.expected_users
    if n is None:
        return {}
    out: dict[str, Any] = {
        "expected_users": n,
        "growth_pct_per_month": projection.growth_pct_per_month,
    }
    if capacity is None:
        return out
    out["capacity_ratio"] = round(capacity / n, 4) if n else None
    out["headroom_users"] = capacity - n
    # a node count from a lower bound (the limit was not found) would be made up
    out["nodes_needed"] = math.ceil(n / capacity) if capacity and limit_reached else None
    if projection.available:
        out["months_until_exhausted"] = (
            math.inf if projection.never else projection.months_until_exhausted
        )
    return out


def _limit_step(plan: CapacityPlan) -> int | None:
    """The step where capacity ran out (first failing), else the last one measured."""
    bad = next((s for s in plan.steps if s.verdict in ("fail", "no-data")), None)
    if bad is not None:
        return bad.index
    ran = [s for s in plan.steps if s.verdict != "not-run"]
    return ran[-1].index if ran else None


def _resources(plan: CapacityPlan, run: RunDir) -> dict[str, Any]:
    """Contention from the container and host collectors' tables, where the run has them."""
    out: dict[str, Any] = {}
    limit = _limit_step(plan)
    if limit is None:
        return out
    c = run.table("container_samples")
    if c is not None and len(c) and {"step_index", "container_id"} <= set(c.columns):
        upto = c[(c["step_index"] >= 0) & (c["step_index"] <= limit)]
        if len(upto) and {"mem_bytes", "mem_limit_bytes"} <= set(c.columns):
            pct = 100.0 * upto["mem_bytes"] / upto["mem_limit_bytes"].clip(lower=1)
            out["mem_used_pct"] = round(float(pct.max()), 1)
        if len(upto) and {"cpu_periods", "cpu_throttled_periods"} <= set(c.columns):
            span = upto.groupby("container_id")[["cpu_periods", "cpu_throttled_periods"]].agg(
                lambda s: s.max() - s.min()
            )
            span = span[span["cpu_periods"] > 0]
            if len(span):
                pct = 100.0 * span["cpu_throttled_periods"] / span["cpu_periods"]
                out["cpu_throttled_pct"] = round(float(pct.max()), 1)
        if len(upto) and "oom_kills" in c.columns:
            grew = upto.groupby("container_id")["oom_kills"].agg(lambda s: s.max() - s.min())
            out["oom_kills"] = int(grew.clip(lower=0).sum())
        if len(upto) and "cpu_throttled_pct" in c.columns:
            # cAdvisor's rows (--prometheus-url) carry the percentage itself, not the counters
            throttled = _throttled_pct(c[c["step_index"] == limit])
            if throttled is not None:
                out["cpu_throttled_pct"] = max(throttled, out.get("cpu_throttled_pct", 0.0))
        if len(upto) and "restarts" in c.columns:
            grew = upto.groupby("container_id")["restarts"].agg(lambda s: s.max() - s.min())
            out["container_restarts"] = int(grew.clip(lower=0).sum())
    manifest = run.read_manifest()
    h, local = _lab_host_rows(run, manifest)
    if h is not None and "step_index" in h.columns:
        rows = h[h["step_index"] == limit]
        if len(rows) and "iowait_pct" in h.columns:
            out["iowait_pct"] = round(float(rows["iowait_pct"].mean()), 1)
        if len(rows) and "cpu_pct" in h.columns:
            # this machine's rows: less the load generator's own share of the host
            share = _generator_share(manifest) if local else 0.0
            busy = float(rows["cpu_pct"].mean()) - share
            out["host_cpu_pct"] = round(max(0.0, busy), 1)
    return out


def _throttled_pct(rows: Any) -> float | None:
    """The most throttled container's mean CFS throttling (periods throttled, %)."""
    per_container = rows.dropna(subset=["cpu_throttled_pct"]).groupby("container_id")
    means = per_container["cpu_throttled_pct"].mean()
    return round(float(means.max()), 1) if len(means) else None


def _lab_host_rows(run: RunDir, manifest: Any) -> tuple[Any, bool]:
    """Host samples of the lab's own machine, and whether they are this machine's: its
    Prometheus node-exporter's where the run read them (--prometheus-url), else the host
    collector's when the lab runs on this machine too (labcap started it, or every address
    of it is loopback)."""
    h = run.table("host_samples")
    if h is None:
        return None, False
    if "source" in h.columns and (h["source"] == "prometheus").any():
        return h[h["source"] == "prometheus"], False
    if "source" in h.columns:
        h = h[h["source"] != "prometheus"]
    return (h, True) if lab_on_this_host(manifest) else (None, False)


def _generator_share(manifest: Any) -> float:
    """The load generator's mean CPU, % of the host's cores (0 when not recorded)."""
    workers = ((manifest.generator or {}).get("per_worker") or {}).values()
    cores = (manifest.environment or {}).get("cpu_count") or 1
    total = sum(float(w.get("cpu_pct_mean") or 0.0) for w in workers if isinstance(w, dict))
    return total / cores


_LOOPBACK = re.compile(
    r"^(?:[a-z+]+://)?(?:[^@/]*@)?(?:127\.\d+\.\d+\.\d+|localhost|\[::1\])(?:[:/]|$)"
)


def lab_on_this_host(manifest: Any) -> bool:
    """Whether the host collector's machine is the lab's: a local run, or a run whose every
    address (and Docker engine) is on this machine (loopback, a unix socket)."""
    if manifest.target == "local":
        return True
    hosts = [str(v) for v in (manifest.hosts or {}).values() if v]
    return bool(hosts) and all(h.startswith("unix://") or _LOOPBACK.match(h) for h in hosts)


# --- decision --------------------------------------------------------------------------------


def recommend(
    plan: CapacityPlan,
    policy: Policy,
    values: Mapping[str, Any],
    binding: BindingConstraint | None = None,
) -> Recommendation:
    """Apply ``policy`` to the measured ``values`` of ``plan``."""
    outcomes = evaluate_rules(policy, values)
    fired = [o for o in outcomes if o.state == "fired"]
    vetoes = [o for o in fired if o.rule.action == INSUFFICIENT]
    actions = [o for o in fired if o.rule.action != INSUFFICIENT]
    measured = [o for o in actions if not is_guide_rule(o)]
    voters = measured or actions  # the guide decides only where the measurement cannot
    decided_by = "measurement" if measured else ("guide" if actions else None)
    scores: dict[str, float] = {}
    heaviest: dict[str, float] = {}
    for o in voters:
        scores[o.rule.action] = scores.get(o.rule.action, 0.0) + o.rule.weight
        heaviest[o.rule.action] = max(heaviest.get(o.rule.action, 0.0), o.rule.weight)
    ranked = sorted(
        scores.items(), key=lambda kv: (-kv[1], -heaviest[kv[0]], DECISIONS.index(kv[0]))
    )
    action = INSUFFICIENT if vetoes or not ranked else ranked[0][0]
    # the rules behind the action first, then the other voters, then the outvoted guide
    order = sorted(
        fired,
        key=lambda o: (
            o.rule.action != action,
            o not in voters and o not in vetoes,
            -o.rule.weight,
        ),
    )
    reasons = tuple(_reason(o, values) for o in order)
    tie = _tie_break(ranked, heaviest) if action != INSUFFICIENT else None
    if tie is not None:
        reasons = (tie, *reasons)
    not_evaluated = tuple(
        NotEvaluated(o.rule.id, o.rule.action, o.missing)
        for o in outcomes
        if o.state == "not-evaluated"
    )
    confidence = _confidence(plan, policy, values, action, ranked, not_evaluated)
    if action == INSUFFICIENT and not vetoes:
        confidence = Confidence("low", (_why_undecided(not_evaluated),))
    outvoted = tuple(o.rule.id for o in actions if o not in voters)
    if outvoted and action != INSUFFICIENT:
        note = (
            f"measured capacity decides: the guide's user-count rules ({', '.join(outvoted)}) "
            "do not vote where the measurement answers"
        )
        confidence = Confidence(confidence.level, (*confidence.why, note))
    summary = _summary(action, reasons, not_evaluated, confidence)
    return Recommendation(
        action=action,
        reasons=reasons,
        binding_constraint=binding,
        confidence=confidence,
        not_evaluated=not_evaluated,
        scores=MappingProxyType(dict(ranked)),
        summary=summary,
        policy_sources=policy.sources,
        measurements=MappingProxyType(dict(values)),
        decided_by=decided_by,
        guide_outvoted=outvoted,
    )


def _why_undecided(not_evaluated: tuple[NotEvaluated, ...]) -> str:
    """Why no action was chosen when no rule said the data was insufficient."""
    missing = sorted({m for n in not_evaluated for m in n.missing})
    if "expected_users" in missing:
        return (
            "no decision without the users the lab expects: pass --expected-users N "
            f"({sum('expected_users' in n.missing for n in not_evaluated)} rules need it)"
        )
    need = f" (missing: {', '.join(missing)})" if missing else ""
    return f"no decision rule fired{need}"


# The guide's rules of thumb read only the users a lab expects, not what was measured.
GUIDE_INPUTS = frozenset({"expected_users", "growth_pct_per_month"})


def is_guide_rule(o: RuleOutcome) -> bool:
    """A rule on the expected users alone: the guide's rule of thumb, not a measurement."""
    names = {name for name, _ in o.inputs}
    return bool(names) and names <= GUIDE_INPUTS


def _tie_break(ranked: list[tuple[str, float]], heaviest: Mapping[str, float]) -> Reason | None:
    """The reason that explains how a tie on total weight was settled, if there was one."""
    tied = [a for a, w in ranked if w == ranked[0][1]]
    if len(tied) < 2:
        return None
    winner, top = tied[0], heaviest[tied[0]]
    if sum(heaviest[a] == top for a in tied) == 1:
        how = f"it is backed by the heaviest single rule (weight {top:g})"
    else:
        how = "their heaviest rules weigh the same too, so the simpler deployment goes first"
    others = ", ".join(tied[1:])
    return Reason(
        rule="tie-break",
        action=winner,
        weight=0.0,
        measured=MappingProxyType({a: ranked_weight for a, ranked_weight in ranked if a in tied}),
        threshold="equal total weight",
        message=(
            f"{winner} ties with {others} at weight {ranked[0][1]:g}; {winner} wins because {how}."
        ),
    )


def _reason(o: RuleOutcome, values: Mapping[str, Any]) -> Reason:
    return Reason(
        rule=o.rule.id,
        action=o.rule.action,
        weight=o.rule.weight,
        measured=MappingProxyType(dict(o.inputs)),
        threshold=o.rule.when.text(),
        message=o.rule.render(values),
    )


_LEVELS = ("high", "medium", "low")


def _confidence(
    plan: CapacityPlan,
    policy: Policy,
    values: Mapping[str, Any],
    action: str,
    ranked: list[tuple[str, float]],
    not_evaluated: tuple[NotEvaluated, ...],
) -> Confidence:
    settings = policy.confidence
    level = 0
    why: list[str] = []

    def at_most(new: str, reason: str) -> None:
        nonlocal level
        level = max(level, _LEVELS.index(new))
        why.append(reason)

    if action == INSUFFICIENT:
        at_most("low", "the data cannot carry a recommendation (see reasons)")
        return Confidence("low", tuple(why))
    cap, expected = values.get("max_users_at_slo"), values.get("expected_users")
    if not plan.limit_reached:
        tested = " (the expected users were tested directly)" if expected is not None else ""
        at_most("medium", f"the run never reached the limit: {cap} users is a lower bound{tested}")
    elif cap == 0:
        at_most("low", "even the first step failed: capacity is only known to be below it")
    else:
        width = values.get("band_width_pct")
        if width is not None and width > settings.wide_band_pct:
            at_most("low", f"the capacity band {plan.band} is {width:g}% wide")
        elif width is not None and width > settings.narrow_band_pct:
            at_most("medium", f"the capacity band {plan.band} is {width:g}% wide")
        upper = values.get("capacity_upper_users")
        if expected is not None and upper is not None and cap < expected < upper:
            at_most(
                "medium",
                f"the {expected} expected users fall inside the capacity band {plan.band}",
            )
    thin = _thinnest_tail(plan)
    if thin is not None and thin[0] < settings.min_tail_samples:
        tail, users, check = thin
        at_most(
            "medium",
            f"at {users} users {check.endpoint} {check.slo.split(':')[-1].split('=')[0]} rests on "
            f"{check.samples} requests, {tail:g} beyond the percentile (fewer than "
            f"{settings.min_tail_samples:g}): a wide confidence interval",
        )
    if plan.status == "invalid":
        at_most("low", f"the run is invalid ({'; '.join(plan.status_reasons) or 'see run'})")
    elif plan.status != "complete":
        at_most("medium", f"the run is {plan.status}: its figures are a lower bound at best")
    errors = values.get("error_pct_passing")
    if errors is not None and errors > settings.noisy_error_pct:
        at_most("medium", f"{errors:g}% of requests failed in the passing steps")
    if len(ranked) > 1:
        (_, top), (runner, second) = ranked[0], ranked[1]
        if second >= top:
            at_most("low", f"a tie with {runner} ({second:g}), settled by the tie-break reason")
        elif second >= settings.close_vote_ratio * top:
            at_most("medium", f"a close vote: {ranked[0][0]} {top:g} against {runner} {second:g}")
    if not why:
        why.append("the limit was found in a narrow band, on complete data, by a clear vote")
    missing = sorted({m for n in not_evaluated for m in n.missing})
    if missing:
        why.append(f"{len(not_evaluated)} rules not evaluated for lack of: {', '.join(missing)}")
    return Confidence(_LEVELS[level], tuple(why))


_QUANTILE = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}


def _thinnest_tail(plan: CapacityPlan) -> tuple[float, int, Any] | None:
    """The percentile check with the fewest requests beyond its percentile at the steps
    that set the capacity (the last passing one and the first failing one):
    (requests beyond it, users, the check), or None when no percentile was judged there."""
    passing = [s for s in plan.steps if s.verdict == "pass"]
    bad = next((s for s in plan.steps if s.verdict in ("fail", "no-data")), None)
    steps = [s for s in (passing[-1] if passing else None, bad) if s is not None]
    best: tuple[float, int, Any] | None = None
    for s in steps:
        for c in s.checks:
            metric = c.slo.split(":")[-1].split("=")[0]
            if metric not in _QUANTILE or not c.enough_data or c.samples is None:
                continue
            tail = round(c.samples * (1 - _QUANTILE[metric]), 1)
            if best is None or tail < best[0]:
                best = (tail, s.users, c)
    return best


def _summary(
    action: str,
    reasons: tuple[Reason, ...],
    not_evaluated: tuple[NotEvaluated, ...],
    confidence: Confidence,
) -> str:
    if action == INSUFFICIENT and not reasons:
        missing = sorted({m for n in not_evaluated for m in n.missing})
        if "expected_users" in missing:
            return (
                f"{action}: pass --expected-users N; the decision weighs the measured capacity "
                "against the users the lab expects."
            )
        need = f" (missing: {', '.join(missing)})" if missing else ""
        return f"{action}: no decision rule fired{need}."
    lead = [r.message for r in reasons if r.action == action][:2]
    return f"{action} ({confidence.level} confidence): " + " ".join(lead)


# --- the whole thing -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanOutcome:
    """``labcap plan``'s answer: capacity, projection and recommendation."""

    capacity: CapacityPlan
    projection: Projection
    recommendation: Recommendation
    gpu: Any = None  # planner.gpu_evidence.GpuEvidence
    bottleneck: Bottleneck | None = None
    scheduling: SchedulingEvidence | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.capacity.to_dict()
        d["projection"] = self.projection.to_dict()
        d["recommendation"] = self.recommendation.to_dict()
        if self.bottleneck is not None:
            d["bottleneck"] = self.bottleneck.to_dict()
        if self.scheduling is not None:
            d["scheduling"] = self.scheduling.to_dict()
        if self.gpu is not None:
            d["gpu"] = self.gpu.to_dict()
        return d


def parse_expected_users(text: str | int | None) -> int | None:
    """'--expected-users 40' -> 40; a positive whole number."""
    return None if text is None else parse_user_count(text, what="--expected-users")


def parse_growth(text: str | float | None) -> float:
    """'--growth-per-month 10' or '10%' -> 10.0 (percent a month; may be negative)."""
    if text is None:
        return 0.0
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*%?\s*", str(text))
    if not m or float(m.group(1)) <= -100:
        raise LabcapError(
            f"--growth-per-month {text!r} is not a percentage above -100 (e.g. 10 or 10%)"
        )
    return float(m.group(1))


def plan_and_recommend(
    run_dir: str | Path,
    *,
    policy_file: str | Path | None = None,
    expected_users: int | None = None,
    growth_pct_per_month: float = 0.0,
    extra_measurements: Mapping[str, Any] | None = None,
) -> PlanOutcome:
    """Capacity plan, projection and recommendation of one run directory."""
    policy = load_policy(policy_file)  # a bad policy fails before the run is read
    run = RunDir.open(run_dir)
    plan = plan_capacity(run)
    projection = project(plan, expected_users, growth_pct_per_month)

    gpu = plan_gpu_evidence(run, plan, policy)  # GPU samples feed the rules as measurements
    extra = {**gpu.measurements, **(extra_measurements or {})}
    sched = scheduling_evidence(run)  # the Kubernetes collector's FailedScheduling
    for name, value in (sched.measurements if sched else {}).items():
        if extra.get(name) is None:
            extra[name] = value
    neck = attribute_run(plan, run, extra)
    extra.setdefault("bottleneck", neck.component or "unknown")
    extra.setdefault("bottleneck_scales_out", neck.scales_out_measured)
    values = gather_measurements(plan, run, policy, projection, extra)
    rec = recommend(plan, policy, values, binding_constraint(plan, policy))
    return PlanOutcome(plan, projection, rec, gpu, neck, sched)


def plan_with_options(opts: PlanOptions) -> PlanOutcome:
    """``labcap plan``: the options' text parsed (one LabcapError if bad), then the plan."""
    return plan_and_recommend(
        opts.run_dir,
        policy_file=opts.policy_file,
        expected_users=parse_expected_users(opts.expected_users),
        growth_pct_per_month=parse_growth(opts.growth_per_month),
    )


__all__ = [
    "BindingConstraint",
    "Confidence",
    "PlanOutcome",
    "Reason",
    "Recommendation",
    "binding_constraint",
    "gather_measurements",
    "parse_expected_users",
    "parse_growth",
    "plan_and_recommend",
    "plan_with_options",
    "recommend",
]
