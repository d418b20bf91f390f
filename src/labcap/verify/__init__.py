"""`labcap verify`: is the new deployment ready to take over from the old one?

Checks, in this order (the read-only data check first, before anything writes):
``data`` (MLflow and file trees), ``logins`` (sample users log in and spawn on both),
``gpu`` (a server on new sees the planned GPUs) and ``capacity`` (the same short step load
on both, then the gate). Verdict: ``ready-to-cut-over`` (exit 0), ``fix-before-cut-over``
(exit 1; exit 3 when nothing failed but something could not be checked) or ``roll-back``
(exit 1: the new deployment cannot serve users).

The names below are imported from their modules on first use (PEP 562), so importing
``labcap.verify.settings`` (``labcap verify --help``) loads none of the checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labcap.lazy import lazy_exports

if TYPE_CHECKING:
    from labcap.verify.capacity import CapacitySettings, capacity_from_runs
    from labcap.verify.checks import (
        RESULT_FILE,
        VerifySettings,
        parse_checks,
        run_verify,
        write_result,
    )
    from labcap.verify.data import DataSettings
    from labcap.verify.files import ChecksumPolicy
    from labcap.verify.logins import LoginSettings, sample_users
    from labcap.verify.records import (
        CHECKS,
        FAIL,
        FIX,
        INCONCLUSIVE,
        PASS,
        READY,
        ROLL_BACK,
        SKIPPED,
        CheckResult,
        Difference,
        VerifyResult,
    )
    from labcap.verify.target import Deployment, read_credentials, resolve_deployment

_HOMES = {
    "capacity": ("CapacitySettings", "capacity_from_runs"),
    "checks": (
        "RESULT_FILE",
        "Progress",
        "VerifySettings",
        "parse_checks",
        "run_verify",
        "write_result",
    ),
    "data": ("DataSettings",),
    "files": ("ChecksumPolicy",),
    "logins": ("LoginSettings", "sample_users"),
    "records": (
        "CHECKS",
        "FAIL",
        "FIX",
        "INCONCLUSIVE",
        "PASS",
        "READY",
        "ROLL_BACK",
        "SKIPPED",
        "CheckResult",
        "Difference",
        "VerifyResult",
    ),
    "target": ("Deployment", "read_credentials", "resolve_deployment"),
}
__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "CHECKS",
    "FAIL",
    "FIX",
    "INCONCLUSIVE",
    "PASS",
    "READY",
    "RESULT_FILE",
    "ROLL_BACK",
    "SKIPPED",
    "CapacitySettings",
    "CheckResult",
    "ChecksumPolicy",
    "DataSettings",
    "Deployment",
    "Difference",
    "LoginSettings",
    "VerifyResult",
    "VerifySettings",
    "capacity_from_runs",
    "parse_checks",
    "read_credentials",
    "resolve_deployment",
    "run_verify",
    "sample_users",
    "write_result",
]
