"""The run report's first section: the recommendation, its reasons under the action each
supports, the binding constraint and the capacity, and the inputs it was weighed on.

The inputs (expected users, growth, policy) come from ``labcap report``'s options, else
from what ``labcap plan`` saved beside the run (``plan.json``); the recommendation itself
is recomputed from the run with them, by the planner (``plan_and_recommend``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labcap.planner.plan_file import PLAN_FILE, DecisionInputs
from labcap.planner.policy import DECISIONS, INSUFFICIENT
from labcap.planner.recommend import PlanOutcome, plan_and_recommend
from labcap.reports.wording import capacity_text

ACTION_TEXT = {
    "stay-on-compose": "Stay on Docker Compose",
    "tune-compose": "Tune the Docker Compose deployment",
    "migrate-to-k3s": "Migrate to K3s",
    "scale-out-k3s": "Scale out on K3s",
    INSUFFICIENT: "Not enough data for a recommendation",
}


def decide(run_path: Path, inputs: DecisionInputs) -> PlanOutcome:
    growth = inputs.growth_pct_per_month
    return plan_and_recommend(
        run_path,
        policy_file=inputs.policy_file,
        expected_users=inputs.expected_users,
        growth_pct_per_month=growth if growth is not None else 0.0,
    )


def _text_of(obj: Any) -> str | None:
    if obj is None:
        return None
    for attr in ("text", "summary"):
        value = getattr(obj, attr, None)
        if callable(value):
            value = value()
        if isinstance(value, str):
            return value
    return str(obj)


def _shortfall_text(s: Any) -> str:
    """An endpoint a step could not judge for too few requests (the planner's record)."""
    if all(hasattr(s, a) for a in ("endpoint", "slo", "step_users", "samples", "min_samples")):
        had = ", ".join(f"{n} at {u} users" for u, n in zip(s.step_users, s.samples, strict=False))
        return (
            f"{s.endpoint}: {s.slo} needs {s.min_samples} successful requests a step; "
            f"had {had}: run longer steps"
        )
    return _text_of(s) or ""


def _inputs_text(inputs: DecisionInputs, run_path: Path) -> str:
    if inputs.source == "none":
        return (
            "no decision inputs: give `labcap report` --expected-users N (and --growth-per-month), "
            "or run `labcap plan RUN --expected-users N` first, which saves them beside the run"
        )
    parts = [
        f"{inputs.expected_users} expected users"
        if inputs.expected_users is not None
        else "expected users not given",
        f"growth {inputs.growth_pct_per_month or 0:g}% a month",
        f"policy {inputs.policy_file}" if inputs.policy_file else "the default policy",
    ]
    where = {
        "given": "given to labcap report",
        "saved": f"saved by labcap plan in {run_path / PLAN_FILE}"
        + (f" at {inputs.saved_at}" if inputs.saved_at else ""),
        "mixed": f"given to labcap report, the rest from {run_path / PLAN_FILE}",
    }[inputs.source]
    return f"{', '.join(parts)} ({where})"


def _binding_text(outcome: PlanOutcome) -> str | None:
    b = outcome.recommendation.binding_constraint
    if b is None:
        return None
    metric = b.slo.split(":")[-1].split("=")[0]
    unit = "%" if metric == "error_pct" else " ms"
    measured = "no successful request" if b.measured is None else f"{b.measured:g}{unit}"
    where = "" if b.endpoint == "*" else f" on {b.endpoint}"
    return (
        f"{b.kind}: {metric}{where} measured {measured} against the SLO's {b.threshold:g}{unit} "
        f"at {b.at_users} users (the first failing step)"
    )


def decision_view(outcome: PlanOutcome, inputs: DecisionInputs, run_path: Path) -> dict[str, Any]:
    """What the template shows, in the order it shows it."""
    rec, plan = outcome.recommendation, outcome.capacity
    actions = [rec.action] + sorted(
        {r.action for r in rec.reasons} - {rec.action},
        key=lambda a: (-(rec.scores.get(a) or 0), a == INSUFFICIENT, a),
    )
    groups = []
    for action in actions:
        reasons = [r for r in rec.reasons if r.action == action]
        if not reasons and action != rec.action:
            continue
        groups.append(
            {
                "action": action,
                "label": ACTION_TEXT.get(action, action),
                "chosen": action == rec.action,
                "score": rec.scores.get(action),
                "reasons": reasons,
            }
        )
    bottleneck = getattr(rec, "bottleneck", None) or getattr(outcome, "bottleneck", None)
    shortfalls = getattr(plan, "needs_more_data", ()) or ()
    return {
        "action": rec.action,
        "label": ACTION_TEXT.get(rec.action, rec.action),
        "is_decision": rec.action in DECISIONS,
        "confidence": rec.confidence,
        "summary": rec.summary,
        "capacity": capacity_text(plan),
        "band": plan.band,
        "limit_reached": plan.limit_reached,
        "lower_bound": plan.max_users_at_slo is not None and not plan.limit_reached,
        "binding": _binding_text(outcome),
        "bottleneck": _text_of(bottleneck),
        "needs_more_data": [_shortfall_text(s) for s in shortfalls],
        "groups": groups,
        "not_evaluated": rec.not_evaluated,
        "projection": outcome.projection.text if outcome.projection.available else None,
        "inputs": _inputs_text(inputs, run_path),
    }
