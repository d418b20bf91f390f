"""``labcap verify``'s options as one typed record: each field's ``metadata["cli"]`` is its
option and ``--help`` text (see labcap.options); the text is parsed on use
(``labcap.verify.options.verify_deployments``).

Standard library only: the CLI reads this before any check's code is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labcap.options import option

ARTIFACT_SOURCES = ("auto", "api", "store")


@dataclass(frozen=True, kw_only=True)
class VerifyOptions:
    """What the user asked ``labcap verify`` for, as given (text is parsed on use)."""

    old: str = field(
        metadata=option(
            "--old",
            metavar="URL_OR_PROFILE",
            help="The deployment in service: hub URL, reference lab workdir (lab.json) or "
            "target file (YAML/JSON: hub_url, mlflow_url, files, profile, gpu).",
        )
    )
    new: str = field(
        metadata=option(
            "--new",
            metavar="URL_OR_PROFILE",
            help="The deployment to cut over to (same forms as --old).",
        )
    )
    checks: str = field(
        default="logins,gpu,data",
        metadata=option(
            "--checks", show_default=True, help="Comma-separated: logins, gpu, data, capacity."
        ),
    )
    users: str = field(
        default="3",
        metadata=option(
            "--sample-users",
            show_default=True,
            metavar="LIST|N",
            deprecated=("--users",),
            help="Sample users for logins and gpu: alice,bob or N generated labcap-verify-N.",
        ),
    )
    old_mlflow: str | None = field(
        default=None, metadata=option("--old-mlflow", metavar="URL", help="MLflow URL of old.")
    )
    new_mlflow: str | None = field(
        default=None, metadata=option("--new-mlflow", metavar="URL", help="MLflow URL of new.")
    )
    old_files: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--old-files",
            multiple=True,
            metavar="DIR",
            help="Home/project tree of old as a local directory (repeatable).",
        ),
    )
    new_files: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--new-files",
            multiple=True,
            metavar="DIR",
            help="The matching tree of new, in the same order as --old-files.",
        ),
    )
    profile: Path | None = field(
        default=None,
        metadata=option(
            "--profile",
            type=Path,
            help="`labcap profile` output of new (its sizing.json): the expected GPU plan.",
        ),
    )
    credentials: Path | None = field(
        default=None,
        metadata=option(
            "--credentials",
            type=Path,
            help="YAML/JSON (mode 0600) with old:/new: hub_password, hub_token, mlflow_token. "
            "Or env: LABCAP_OLD_HUB_PASSWORD, LABCAP_NEW_HUB_TOKEN, ... (never argv).",
        ),
    )
    checksums: str = field(
        default="all",
        metadata=option(
            "--checksums",
            show_default=True,
            metavar="all|none|N",
            help="sha256 of every file, of none, or of a sample of N files per tree.",
        ),
    )
    artifact_source: str = field(
        default="auto",
        metadata=option(
            "--artifacts",
            choices=ARTIFACT_SOURCES,
            show_default=True,
            help="MLflow artifact listings through the server's API, or read from the artifact "
            "store (auto: the store when a run's artifact_uri is a local path here, else the "
            "API).",
        ),
    )
    ignore: tuple[str, ...] = field(
        default=(),  # labcap's own load-test data
        metadata=option(
            "--ignore",
            multiple=True,
            metavar="GLOB",
            help="Experiment names / top-level tree entries to leave out "
            "[default: labcap-* (labcap's own load-test data)].",
        ),
    )
    spawn_margin: str = field(
        default="100%",
        metadata=option(
            "--spawn-margin",
            show_default=True,
            help="How much slower new's median spawn may be (also >10 s) before it fails.",
        ),
    )
    capacity_users: str = field(
        default="2,4",
        metadata=option(
            "--capacity-users",
            show_default=True,
            unit="user_steps",
            help="The capacity check's concurrent users per step, comma separated.",
        ),
    )
    capacity_step: str = field(
        default="60s",
        metadata=option(
            "--capacity-step-duration",
            show_default=True,
            unit="duration",
            deprecated=("--capacity-step",),
            help="How long the capacity check holds each user count.",
        ),
    )
    capacity_scenario: str = field(
        default="",
        metadata=option(
            "--capacity-scenario", help="Scenario [default: lab, or the one the URLs allow]."
        ),
    )
    capacity_runs: str = field(
        default="",
        metadata=option(
            "--capacity-runs",
            metavar="OLD_RUN,NEW_RUN",
            help="Judge capacity from two run directories already measured, one on each "
            "deployment with the same steps (`labcap run`, one after the other), instead of "
            "loading both at once: on one machine the two loads compete for its CPUs.",
        ),
    )
    max_regressions: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--max-regression",
            multiple=True,
            metavar="METRIC=LIMIT",
            help="Capacity gate margins, as for `labcap gate` [default: p95=10%, error_pct=0.5].",
        ),
    )
    out: Path | None = field(
        default=None,
        metadata=option(
            "--out",
            type=Path,
            help="Write verify.json (and the capacity runs) here [default: runs/verify-<time> "
            "with capacity, else nothing].",
        ),
    )
    junit: Path | None = field(
        default=None,
        metadata=option(
            "--junit", type=Path, help="Also write JUnit XML here (one testcase per check)."
        ),
    )
    env: dict[str, str] | None = field(default=None, repr=False)  # default: os.environ
