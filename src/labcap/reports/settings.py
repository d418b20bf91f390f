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
