"""``labcap report``'s options as a typed record: each field's ``metadata["cli"]`` is its
argument or option and ``--help`` text (see labcap.options).

Standard library only: the CLI reads this before plotly and the run readers are imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labcap.options import argument, option


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """One ``labcap report``: one run (its report) or several (a comparison), and the file."""

    run_dirs: tuple[Path, ...] = field(metadata=argument(nargs=-1, type=Path))
    output: Path | None = field(
        default=None,
        metadata=option(
            "-o",
            "--output",
            type=Path,
            help="HTML file to write [default: RUN_DIR/report.html; compare.html for several "
            "runs].",
        ),
    )
    expected_users: str | None = field(
        default=None,
        metadata=option(
            "--expected-users",
            metavar="N",
            help="Concurrent users the lab expects, for the recommendation [default: what "
            "`labcap plan` saved beside the run in plan.json, if anything]. One run only.",
        ),
    )
    growth_per_month: str | None = field(
        default=None,
        metadata=option(
            "--growth-per-month",
            metavar="PCT",
            help="Expected growth of those users, percent a month [default: as saved by plan].",
        ),
    )
    policy_file: Path | None = field(
        default=None,
        metadata=option(
            "--policy",
            type=Path,
            metavar="FILE",
            help="YAML policy merged over the default by rule id [default: as saved by plan].",
        ),
    )
