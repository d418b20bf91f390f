"""``labcap plan``'s and ``labcap gate``'s options as typed records: each field's
``metadata["cli"]`` is its option (or argument) and ``--help`` text (see labcap.options).

Standard library only: the CLI reads these before the planner (numpy, pandas) is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labcap.options import argument, option


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    """What ``labcap plan`` was asked: the run, and the text of its options."""

    run_dir: Path = field(metadata=argument(type=Path))
    policy_file: Path | None = field(
        default=None,
        metadata=option(
            "--policy",
            type=Path,
            metavar="FILE",
            help="YAML policy merged over the default by rule id (change thresholds, disable "
            "or add rules).",
        ),
    )
    expected_users: int | None = field(
        default=None,
        metadata=option(
            "--expected-users",
            unit="users",
            config="expected_users",
            help="Concurrent users the lab expects.",
        ),
    )
    growth_per_month: str | None = field(
        default=None,
        metadata=option(
            "--growth-per-month",
            metavar="PCT",
            help="Expected growth of those users, percent a month (for the projection).",
        ),
    )


@dataclass(frozen=True, kw_only=True)
class GateOptions:
    """What ``labcap gate`` was asked: the runs (a paired run; a baseline run or a directory
    of past baseline runs, and the current run), the margins' text, the JUnit file."""

    baseline: Path = field(metadata=argument(type=Path))
    current: Path | None = field(default=None, metadata=argument(type=Path, required=False))
    max_regressions: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--max-regression",
            multiple=True,
            metavar="METRIC=LIMIT",
            config="max_regression",
            help="How much worse a metric may get, repeatable: p50/p90/p95/p99=PERCENT "
            "(relative) or error_pct=POINTS (absolute); ENDPOINT:METRIC=LIMIT for one "
            "endpoint; METRIC=off drops one. [default: p95=10%, error_pct=0.5]",
        ),
    )
    min_effect: str = field(
        default="1ms",
        metadata=option(
            "--min-effect",
            unit="duration_or_zero",
            show_default=True,
            deprecated=("--min-effect-ms",),
            deprecated_value="{}ms",
            help="Noise floor: latency slowdowns smaller than this never fail.",
        ),
    )
    alpha: str = field(
        default="0.05",
        metadata=option(
            "--alpha",
            metavar="P",
            show_default=True,
            help="Significance level of the test, per comparison.",
        ),
    )
    min_windows: str = field(
        default="5",
        metadata=option(
            "--min-windows",
            metavar="N",
            show_default=True,
            help="Steady windows with data each run needs per step and endpoint.",
        ),
    )
    junit: Path | None = field(
        default=None,
        metadata=option(
            "--junit",
            type=Path,
            help="Also write JUnit XML here (one testcase per step x endpoint x metric).",
        ),
    )
