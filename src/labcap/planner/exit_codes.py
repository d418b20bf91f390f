"""What ``labcap run`` exits with, so that a CI job can use a run as a threshold check.

The codes mean what they mean for ``labcap gate``, plus one of their own:

- 0: the run measured the target (and, with ``--fail-on-slo``, every step met every SLO);
- 1: the run could not be carried out (the load engine failed);
- 2: bad input or an unusable scenario (one line on stderr);
- 3: inconclusive: the run is invalid (its figures do not describe the target, e.g. every
  request of the first step failed, or the run stopped early on a clearly broken target),
  or, with ``--fail-on-slo``, no step missed an SLO but
  some could not be judged (a partial run, a step not run, too few requests for a
  percentile): missing data never passes, as with the gate;
- 4: with ``--fail-on-slo``, a step missed its SLOs (a breach on enough requests, or a step
  in which every request failed);
- 130: interrupted (Ctrl-C or SIGTERM), whatever was measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from labcap.planner.capacity import CapacityPlan

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_SLO_MISSED = 4
EXIT_INTERRUPTED = 130
# the reason measure.run records when it stops a run on a clearly broken target
EARLY_STOP = "stopped early: "


@dataclass(frozen=True)
class RunExit:
    code: int
    message: str  # one line for stderr; empty when the code is 0


def run_exit(plan: CapacityPlan, fail_on_slo: bool = False) -> RunExit:
    """The exit code of a finished (not interrupted) run and the line that explains it."""
    stopped = [r for r in plan.status_reasons if r.startswith(EARLY_STOP)]
    if plan.status == "failed" and stopped:  # measured, but the target was clearly broken
        return RunExit(
            EXIT_INCONCLUSIVE,
            f"run invalid: {stopped[0]}; its figures do not describe the target (exit 3)",
        )
    if plan.status == "failed":
        return RunExit(EXIT_RUN_FAILED, f"run failed: {_why(plan)}")
    if plan.status == "invalid":
        return RunExit(
            EXIT_INCONCLUSIVE,
            f"run invalid: {_why(plan)}; its figures do not describe the target (exit 3)",
        )
    if not fail_on_slo:
        return RunExit(EXIT_OK, "")
    missed = [s for s in plan.steps if s.verdict in ("fail", "no-data")]
    if missed:
        first = missed[0]
        which = (
            ", ".join(
                sorted(
                    {
                        f"{c.endpoint} {c.slo}" if c.endpoint != "*" else c.slo
                        for c in first.checks
                        if c.failed
                    }
                )
            )
            or "every request failed"
        )
        users = ", ".join(str(s.users) for s in missed)
        return RunExit(
            EXIT_SLO_MISSED,
            f"SLOs missed at {users} users (first at {first.users}: {which}) (exit 4)",
        )
    unjudged = [s for s in plan.steps if s.verdict in ("inconclusive", "not-run")]
    if unjudged or plan.status != "complete":
        where = ", ".join(f"{s.users} users ({s.verdict})" for s in unjudged)
        why = f"steps not judged: {where}" if where else f"the run is {plan.status}"
        return RunExit(EXIT_INCONCLUSIVE, f"SLOs not judged on every step: {why} (exit 3)")
    return RunExit(EXIT_OK, "")


def _why(plan: CapacityPlan) -> str:
    return "; ".join(plan.status_reasons) or "no reason recorded"


__all__ = [
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "EXIT_SLO_MISSED",
    "EXIT_USAGE",
    "RunExit",
    "run_exit",
]
