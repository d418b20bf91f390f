"""What `labcap verify` finds: differences, check results, the verdict and its exit code.

Statuses of a check: ``pass``; ``fail`` (a difference that must be fixed);
``inconclusive`` (it could not be checked: the verdict does not pass on missing
data, as the gate does not); ``skipped`` (not applicable here, always with the
reason, e.g. no GPU expected and none present).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, INCONCLUSIVE, SKIPPED = "pass", "fail", "inconclusive", "skipped"
READY, FIX, ROLL_BACK = "ready-to-cut-over", "fix-before-cut-over", "roll-back"
# The gate's conventions: 0 pass, 1 failure, 2 usage error (LabcapError), 3 inconclusive.
VERDICT_EXIT = {READY: 0, FIX: 1, ROLL_BACK: 1}
EXIT_INCONCLUSIVE = 3
CHECKS = ("logins", "gpu", "data", "capacity")
SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class Difference:
    """One thing that is not the same on the new deployment (or a problem found there).

    ``kind`` is stable and machine-readable (``missing-run``, ``changed-metric``,
    ``missing-file``, ``login-failed`` ...); ``subject`` names what differs.
    """

    kind: str
    subject: str
    old: Any = None
    new: Any = None
    detail: str = ""
    # what ``old`` and ``new`` stand for (the GPU check compares the plan with what it saw)
    labels: tuple[str, str] = ("old", "new")

    def line(self) -> str:
        values = ""
        if self.old is not None or self.new is not None:
            values = f": {self.labels[0]} {_short(self.old)}, {self.labels[1]} {_short(self.new)}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind} {self.subject}{values}{detail}"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    summary: str
    differences: tuple[Difference, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    # the new deployment cannot serve users at all: roll back rather than fix
    critical: bool = False
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class VerifyResult:
    old: dict[str, Any]
    new: dict[str, Any]
    checks: tuple[CheckResult, ...]

    @property
    def verdict(self) -> str:
        if any(c.critical for c in self.checks):
            return ROLL_BACK
        if all(c.status in (PASS, SKIPPED) for c in self.checks):
            return READY
        return FIX

    @property
    def exit_code(self) -> int:
        if self.verdict == FIX and not any(c.status == FAIL for c in self.checks):
            return EXIT_INCONCLUSIVE  # nothing failed, but something could not be checked
        return VERDICT_EXIT[self.verdict]

    @property
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.status in (FAIL, INCONCLUSIVE)]

    @property
    def summary(self) -> str:
        verdict = self.verdict
        if verdict == READY:
            text = f"{verdict}: " + ", ".join(f"{c.name} {c.status}" for c in self.checks)
        else:
            text = f"{verdict}: " + ", ".join(
                f"{c.name} {c.status}" for c in self.checks if c.status in (FAIL, INCONCLUSIVE)
            )
        return f"{text} (exit {self.exit_code})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "failed_checks": self.failed_checks,
            "old": self.old,
            "new": self.new,
            "checks": [asdict(c) for c in self.checks],
        }

    def lines(self) -> list[str]:
        """The human-readable report: verdict, then each check and every difference."""
        out = [self.summary]
        for c in self.checks:
            out.append(f"  {c.status.upper():<13} {c.name}: {c.summary}")
            out.extend(f"      {d.line()}" for d in c.differences)
        return out


def _short(value: Any, limit: int = 80) -> str:
    text = "(none)" if value is None else repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
