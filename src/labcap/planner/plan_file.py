"""``plan.json`` beside a run: the decision inputs ``labcap plan`` was given, and its answer.

``labcap plan RUN --expected-users N`` writes ``RUN/plan.json`` (atomically, like every
file of a run directory) so that ``labcap report RUN`` can state the same recommendation
without being told the inputs again. Only a plan given a decision input (expected users,
growth, a policy file) writes it; a plain ``labcap plan RUN`` leaves an earlier one alone.

The file is versioned on its own (``schema_version``, major.minor): a reader refuses a
major version newer than its own with one clear line. The saved ``outcome`` is a record of
what ``plan`` printed; readers take the ``inputs`` and recompute the answer from the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.planner.settings import PlanOptions
from labcap.store import atomic_write_json

PLAN_FILE = "plan.json"
PLAN_FILE_SCHEMA = "1.0"
PLAN_FILE_MAJOR = 1


@dataclass(frozen=True)
class DecisionInputs:
    """What a recommendation weighs the measurement against, and where that came from."""

    expected_users: int | None = None
    growth_pct_per_month: float | None = None  # None: not given (no growth)
    policy_file: str | None = None
    # "given" (options), "saved" (plan.json beside the run), "mixed" or "none"
    source: str = "none"
    saved_at: str | None = None

    @property
    def any(self) -> bool:
        return (
            self.expected_users is not None
            or self.growth_pct_per_month is not None
            or self.policy_file is not None
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected_users": self.expected_users,
            "growth_pct_per_month": self.growth_pct_per_month,
            "policy_file": self.policy_file,
        }


@dataclass(frozen=True)
class SavedPlan:
    """``labcap plan``'s answer and where its inputs were saved (None: not saved, and
    ``note`` says why when it was meant to be)."""

    outcome: Any  # planner.recommend.PlanOutcome
    path: Path | None
    note: str | None = None


def inputs_from_options(opts: PlanOptions) -> DecisionInputs:
    from labcap.planner.recommend import parse_expected_users, parse_growth

    inputs = DecisionInputs(
        expected_users=parse_expected_users(opts.expected_users),
        growth_pct_per_month=(
            parse_growth(opts.growth_per_month) if opts.growth_per_month is not None else None
        ),
        policy_file=str(Path(opts.policy_file).resolve()) if opts.policy_file else None,
    )
    return DecisionInputs(**{**inputs.to_dict(), "source": "given" if inputs.any else "none"})


def save_plan(run_dir: str | Path, inputs: DecisionInputs, outcome: Any) -> Path:
    """Write ``run_dir/plan.json`` atomically: the inputs and the outcome's JSON."""
    path = Path(run_dir) / PLAN_FILE
    atomic_write_json(
        path,
        {
            "schema_version": PLAN_FILE_SCHEMA,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "inputs": inputs.to_dict(),
            "outcome": outcome.to_dict(),
        },
    )
    return path


def read_saved_inputs(run_dir: str | Path) -> DecisionInputs | None:
    """The inputs ``labcap plan`` saved beside the run, or None when it saved none."""
    path = Path(run_dir) / PLAN_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LabcapError(f"{path}: cannot read it ({e.strerror or e})") from None
    fix = "run `labcap plan` again or delete it"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabcapError(f"{path}: not valid JSON (line {e.lineno}); {fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
        raise LabcapError(f"{path}: not a labcap plan file (no 'inputs' record); {fix}")
    version = str(data.get("schema_version", ""))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise LabcapError(f"{path}: schema_version {version!r} is not MAJOR.MINOR; {fix}") from None
    if major > PLAN_FILE_MAJOR:
        raise LabcapError(
            f"{path}: written by a newer labcap (plan file schema {version}; this one reads "
            f"{PLAN_FILE_MAJOR}.x): upgrade labcap, or {fix}"
        )
    raw = data["inputs"]
    users, growth, policy = (
        raw.get("expected_users"),
        raw.get("growth_pct_per_month"),
        raw.get("policy_file"),
    )
    if users is not None and (not isinstance(users, int) or isinstance(users, bool) or users <= 0):
        raise LabcapError(f"{path}: expected_users {users!r} is not a positive whole number")
    if growth is not None and (
        not isinstance(growth, int | float) or isinstance(growth, bool) or growth <= -100
    ):
        raise LabcapError(f"{path}: growth_pct_per_month {growth!r} is not a percentage > -100")
    if policy is not None and not isinstance(policy, str):
        raise LabcapError(f"{path}: policy_file {policy!r} is not a path")
    growth = float(growth) if growth is not None else None
    return DecisionInputs(users, growth, policy, "saved", data.get("written_at"))


def merge_inputs(given: DecisionInputs, saved: DecisionInputs | None) -> DecisionInputs:
    """Each input from the options where given, else from the saved plan."""
    if saved is None:
        return given
    users = given.expected_users if given.expected_users is not None else saved.expected_users
    growth = (
        given.growth_pct_per_month
        if given.growth_pct_per_month is not None
        else saved.growth_pct_per_month
    )
    policy = given.policy_file if given.policy_file is not None else saved.policy_file
    merged = DecisionInputs(users, growth, policy)
    if not merged.any:
        return DecisionInputs(source="none")
    if not given.any:
        source = "saved"
    elif merged.to_dict() == given.to_dict():
        return given
    else:
        source = "mixed"
    return DecisionInputs(users, growth, policy, source, saved.saved_at)


def plan_and_save(opts: PlanOptions) -> SavedPlan:
    """``labcap plan``: the plan of the options, and, when given a decision input, its
    inputs saved beside the run for ``labcap report``. A run directory that cannot be
    written (read-only) still gets its plan; ``note`` says the inputs were not saved."""
    from labcap.planner.recommend import plan_with_options

    outcome = plan_with_options(opts)  # bad options or a bad run fail here, before any write
    inputs = inputs_from_options(opts)
    if not inputs.any:
        return SavedPlan(outcome, None)
    try:
        return SavedPlan(outcome, save_plan(opts.run_dir, inputs, outcome))
    except OSError as e:
        where = e.filename or str(Path(opts.run_dir) / PLAN_FILE)
        return SavedPlan(outcome, None, f"decision inputs not saved: {where}: {e.strerror or e}")


__all__ = [
    "PLAN_FILE",
    "PLAN_FILE_SCHEMA",
    "DecisionInputs",
    "SavedPlan",
    "inputs_from_options",
    "merge_inputs",
    "plan_and_save",
    "read_saved_inputs",
    "save_plan",
]
