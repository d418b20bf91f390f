"""``labcap verify``'s checks run in order, and their result written (verify.json).

``run_verify`` runs the chosen checks (data first: the read-only one) on the two
deployments; ``write_result`` writes the result, refusing to if a secret would land in it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labcap.errors import LabcapError
from labcap.verify.capacity import CapacitySettings, check_capacity
from labcap.verify.data import DataSettings, check_data
from labcap.verify.gpu import check_gpu
from labcap.verify.logins import LoginSettings, check_logins
from labcap.verify.records import (
    CHECKS,
    CheckResult,
    VerifyResult,
)
from labcap.verify.target import Deployment

Progress = Callable[[str], None]
RESULT_FILE = "verify.json"


@dataclass(frozen=True)
class VerifySettings:
    checks: tuple[str, ...] = ("logins", "gpu", "data")
    users: tuple[str, ...] = ("labcap-verify-1", "labcap-verify-2", "labcap-verify-3")
    logins: LoginSettings = field(default_factory=LoginSettings)
    data: DataSettings = field(default_factory=DataSettings)
    capacity: CapacitySettings = field(default_factory=CapacitySettings)
    out: Path | None = None  # capacity runs and verify.json land here


def parse_checks(text: str) -> tuple[str, ...]:
    names = [c.strip() for c in str(text).split(",") if c.strip()]
    unknown = [c for c in names if c not in CHECKS]
    if unknown or not names:
        raise LabcapError(
            f"--checks {text!r}: unknown check(s) {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(CHECKS)}"
        )
    return tuple(c for c in ("data", "logins", "gpu", "capacity") if c in names)


def run_verify(
    old: Deployment,
    new: Deployment,
    settings: VerifySettings | None = None,
    progress: Progress = lambda _m: None,
) -> VerifyResult:
    """Run the chosen checks (data first: it is the read-only one) and return the result."""
    settings = settings or VerifySettings()
    order = [c for c in ("data", "logins", "gpu", "capacity") if c in settings.checks]
    _require_passwords(old, new, order)
    results: list[CheckResult] = []
    for name in order:
        progress(f"verify: {name} check")
        if name == "data":
            result = check_data(old, new, settings.data, progress)
        elif name == "logins":
            result = check_logins(old, new, settings.users, settings.logins, progress)
        elif name == "gpu":
            result = check_gpu(new, settings.users[0], settings.logins.hub, progress)
        else:
            if settings.out is None and settings.capacity.runs is None:
                raise LabcapError("the capacity check needs --out DIR for its two run directories")
            result = check_capacity(old, new, settings.capacity, settings.out, progress)
        progress(f"verify: {name} {result.status} ({result.elapsed_s:.1f} s)")
        results.append(result)
    return VerifyResult(old.describe(), new.describe(), tuple(results))


def _require_passwords(old: Deployment, new: Deployment, checks: Sequence[str]) -> None:
    """Fail fast (exit 2) rather than report every login as failed for want of a password."""
    sides = [old, new] if "logins" in checks else [new] if "gpu" in checks else []
    for dep in sides:
        if dep.hub_url and not dep.hub_password:
            raise LabcapError(
                f"no hub password for {dep.label}: set LABCAP_{dep.label.upper()}_HUB_PASSWORD "
                "(or LABCAP_HUB_PASSWORD for both), or give --credentials FILE"
            )


def write_result(result: VerifyResult, out: Path, secrets: Sequence[str] = ()) -> Path:
    """verify.json in ``out``, atomically; refuses to write if a secret would land in it."""
    from labcap.store import atomic_write_bytes

    text = json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    if any(s and s in text for s in secrets):
        raise LabcapError("a credential would leak into verify.json; refusing to write it")
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULT_FILE
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
