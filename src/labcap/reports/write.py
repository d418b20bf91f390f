"""``labcap report``: one run's report or a comparison, from the command's typed options."""

from __future__ import annotations

from pathlib import Path

from labcap.errors import LabcapError
from labcap.planner.plan_file import DecisionInputs, merge_inputs, read_saved_inputs
from labcap.planner.recommend import parse_expected_users, parse_growth
from labcap.reports.settings import ReportOptions


def given_inputs(opts: ReportOptions) -> DecisionInputs:
    """The decision inputs given as options (parsed: one LabcapError if bad)."""
    inputs = DecisionInputs(
        expected_users=parse_expected_users(opts.expected_users),
        growth_pct_per_month=(
            parse_growth(opts.growth_per_month) if opts.growth_per_month is not None else None
        ),
        policy_file=str(Path(opts.policy_file).resolve()) if opts.policy_file else None,
    )
    if inputs.policy_file and not Path(inputs.policy_file).is_file():
        raise LabcapError(f"--policy {opts.policy_file}: no such file")
    return DecisionInputs(**inputs.to_dict(), source="given" if inputs.any else "none")


def write_report(opts: ReportOptions) -> Path:
    """Write the report the options ask for; the path written."""
    if not opts.run_dirs:
        raise LabcapError("give a run directory (or several, for a comparison)")
    given = given_inputs(opts)
    if len(opts.run_dirs) == 1:
        from labcap.reports.html import write_run_report
        from labcap.store import RunDir

        run = RunDir.open(opts.run_dirs[0])
        inputs = merge_inputs(given, read_saved_inputs(run.path))
        if inputs.policy_file and not Path(inputs.policy_file).is_file():
            raise LabcapError(
                f"{run.path / 'plan.json'}: its policy file {inputs.policy_file} is gone; "
                "give --policy FILE, or run `labcap plan` again"
            )
        return write_run_report(run.path, opts.output, inputs)
    if given.any:
        raise LabcapError(
            "--expected-users, --growth-per-month and --policy apply to one run's report, "
            "not to a comparison"
        )
    from labcap.reports.compare import write_comparison

    return write_comparison(list(opts.run_dirs), opts.output or Path("compare.html"))
