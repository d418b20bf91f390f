"""``labcap lab``'s options as typed records: each field's ``metadata["cli"]`` is its option
and ``--help`` text (see labcap.options).

Standard library only: the CLI reads these before JupyterHub's launcher (jinja2, psutil) is
imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labcap.options import option

DEFAULT_LAB_DIR = Path(".labcap/lab")


@dataclass(frozen=True, kw_only=True)
class LabUpOptions:
    """``labcap lab up``: where the lab keeps its state."""

    workdir: Path = field(
        default=DEFAULT_LAB_DIR,
        metadata=option(
            "--workdir",
            type=Path,
            show_default=True,
            help="Where the lab keeps its state, logs and databases.",
        ),
    )


@dataclass(frozen=True, kw_only=True)
class LabOptions:
    """``labcap lab down`` and ``labcap lab status``: the lab's workdir."""

    workdir: Path = field(
        default=DEFAULT_LAB_DIR, metadata=option("--workdir", type=Path, show_default=True)
    )
