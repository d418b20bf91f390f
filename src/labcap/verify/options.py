"""``labcap verify``'s one call: acting on its options (``labcap.verify.settings.VerifyOptions``).

``verify_deployments`` checks the options (one clear error before anything is touched),
resolves both deployments, runs the checks and writes verify.json and the JUnit XML
where asked.
"""

from __future__ import annotations

from pathlib import Path

from labcap.errors import LabcapError
from labcap.measure.session import default_out
from labcap.planner.gate import thresholds_from_options
from labcap.units import parse_duration, parse_user_steps
from labcap.verify.capacity import CapacitySettings
from labcap.verify.checks import Progress, VerifySettings, parse_checks, run_verify, write_result
from labcap.verify.data import DEFAULT_IGNORE, DataSettings
from labcap.verify.files import ChecksumPolicy
from labcap.verify.junit_report import write_junit
from labcap.verify.logins import LoginSettings, sample_users
from labcap.verify.records import VerifyResult
from labcap.verify.settings import VerifyOptions
from labcap.verify.target import Deployment, read_credentials, resolve_deployment


def verify_deployments(opts: VerifyOptions, progress: Progress) -> VerifyResult:
    """Run the checks ``opts`` ask for; write verify.json (with --out or the capacity check)
    and the JUnit XML (with --junit), each told on ``progress``."""
    checks = parse_checks(opts.checks)
    old, new = deployments(opts)
    measures = "capacity" in checks and not opts.capacity_runs
    out = opts.out or (default_out("verify") if measures else None)
    result = run_verify(old, new, verify_settings(opts, checks, out), progress)
    if out is not None:
        progress(f"result: {write_result(result, out, (*old.secrets, *new.secrets))}")
    if opts.junit is not None:
        progress(f"junit: {write_junit(result, opts.junit)}")
    return result


def deployments(opts: VerifyOptions) -> tuple[Deployment, Deployment]:
    """Old and new, each from its text, MLflow URL, file trees and credentials."""
    creds = read_credentials(opts.credentials) if opts.credentials else {}
    old = resolve_deployment(
        "old",
        opts.old,
        mlflow_url=opts.old_mlflow,
        files=opts.old_files,
        credentials=creds.get("old"),
        env=opts.env,
    )
    new = resolve_deployment(
        "new",
        opts.new,
        mlflow_url=opts.new_mlflow,
        files=opts.new_files,
        profile=opts.profile,
        credentials=creds.get("new"),
        env=opts.env,
    )
    return old, new


def verify_settings(
    opts: VerifyOptions, checks: tuple[str, ...], out: Path | None
) -> VerifySettings:
    """The checks' own settings, every option parsed (bad text: one LabcapError)."""
    return VerifySettings(
        checks=checks,
        users=sample_users(opts.users),
        logins=LoginSettings(spawn_margin=percent(opts.spawn_margin, "--spawn-margin")),
        data=DataSettings(
            ChecksumPolicy.parse(opts.checksums),
            ignore=opts.ignore or DEFAULT_IGNORE,
            artifact_source=opts.artifact_source,
        ),
        capacity=capacity_settings(opts),
        out=out,
    )


def capacity_settings(opts: VerifyOptions) -> CapacitySettings:
    thresholds = thresholds_from_options(opts.max_regressions)
    return CapacitySettings(
        scenario=opts.capacity_scenario,
        users=parse_user_steps(opts.capacity_users),
        step_duration_s=parse_duration(opts.capacity_step, what="--capacity-step-duration"),
        thresholds=thresholds,
        runs=parse_run_pair(opts.capacity_runs),
    )


def parse_run_pair(text: str) -> tuple[Path, Path] | None:
    """'OLD_RUN,NEW_RUN' -> the two run directories (each must exist); '' -> None."""
    if not str(text or "").strip():
        return None
    parts = [t.strip() for t in str(text).split(",")]
    if len(parts) != 2 or not all(parts):
        raise LabcapError(f"--capacity-runs {text!r}: give two run directories, OLD_RUN,NEW_RUN")
    paths = (Path(parts[0]), Path(parts[1]))
    for path in paths:
        if not path.is_dir():
            raise LabcapError(f"--capacity-runs: {path}: no such run directory")
    return paths


def percent(text: str, what: str) -> float:
    """'100%' (or '100') -> 1.0; 0% to 10000%."""
    raw = str(text).strip().removesuffix("%")
    try:
        value = float(raw) / 100
    except ValueError:
        raise LabcapError(f"{what} {text!r} is not a percentage, e.g. 100%") from None
    if not 0 <= value <= 100:
        raise LabcapError(f"{what} {text!r} must lie between 0% and 10000%")
    return value
