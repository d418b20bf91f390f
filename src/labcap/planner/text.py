"""The text ``labcap plan`` and ``labcap gate`` print: what their results say, for humans.

The ``--json`` output is the results' own ``to_dict()``; these are the plain-text views.
"""

from __future__ import annotations

from labcap.planner.gate import GateResult
from labcap.planner.recommend import PlanOutcome, Recommendation


def describe_plan(outcome: PlanOutcome) -> str:
    """The verdict, one line per step, the recommendation with its reasons and confidence,
    then the projection and the GPU evidence where there are any."""
    result, rec = outcome.capacity, outcome.recommendation
    lines = [result.verdict]
    for s in result.steps:
        p95 = "–" if s.p95_ms is None else f"{s.p95_ms:.1f} ms"
        lines.append(
            f"  step {s.index + 1}: {s.users:>4} users  {s.verdict:<8} "
            f"{s.requests:>7} req  {s.error_pct:6.2f}% failed  p95 {p95}"
        )
    lines.append(f"recommendation: {rec.action} ({rec.confidence.level} confidence)")
    lines += _grouped_reasons(rec)
    if not rec.reasons:
        lines.append(f"  {rec.summary}")
    lines += [f"  confidence: {why}" for why in rec.confidence.why]
    if outcome.bottleneck is not None and outcome.bottleneck.component is not None:
        lines.append(f"bottleneck: {outcome.bottleneck.summary()}")
    sched = outcome.scheduling
    if sched is not None and sched.gpu_waits:
        split = "; ".join(
            f"{w.pod} waited {'>= ' if not w.scheduled else ''}{w.waited_for_gpu_s:.1f} s for a "
            "GPU, then "
            + ("never started" if w.starting_s is None else f"started in {w.starting_s:.1f} s")
            for w in sched.gpu_waits[:3]
        )
        lines.append(
            f"gpu queue: {len(sched.gpu_waits)} user server(s) waited for nvidia.com/gpu, p95 "
            f"{sched.gpu_queue_wait_p95_ms:g} ms ({split})"
        )
    if outcome.projection.available:
        lines.append(f"projection: {outcome.projection.text}")
    if outcome.gpu is not None and outcome.gpu.available:
        lines.append(f"gpu: {outcome.gpu.summary()}")
    return "\n".join(lines)


def _grouped_reasons(rec: Recommendation) -> list[str]:
    """The reasons under the action each supports: the chosen one first, then the others,
    then the guide's rules of thumb the measurement outvoted."""
    outvoted = set(rec.guide_outvoted)
    groups: dict[str, list[str]] = {}
    for r in rec.reasons:
        if r.rule in outvoted:
            continue
        groups.setdefault(r.action, []).append(f"    - [{r.rule}] {r.message}")
    lines: list[str] = []
    for action, items in groups.items():
        if action == rec.action:
            head = f"  for {action}:"
        else:
            weight = rec.scores.get(action)
            vote = f", outvoted ({weight:g})" if weight is not None else ""
            head = f"  for {action}{vote}:"
        lines += [head, *items]
    if outvoted:
        lines.append("  the guide's user-count rules, not counted (measured capacity decides):")
        lines += [
            f"    - [{r.rule}] {r.action}: {r.message}" for r in rec.reasons if r.rule in outvoted
        ]
    return lines


def describe_gate(result: GateResult) -> str:
    """The summary, the reasons, then one line per comparison with its outcome."""
    lines = [result.summary]
    lines += [f"  {reason}" for reason in result.reasons]
    lines += [
        f"  {c.outcome.upper():<12} step {c.step_index + 1} ({c.users} users) "
        f"{c.endpoint} {c.metric}: {c.reason}"
        for c in result.comparisons
    ]
    return "\n".join(lines)
