"""The logins check: sample users log in and spawn a server on both deployments."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from labcap.verify.hub import HubSettings, HubStepError, HubUser
from labcap.verify.records import FAIL, INCONCLUSIVE, PASS, CheckResult, Difference
from labcap.verify.target import Deployment

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoginSettings:
    """Knobs of the logins check."""

    # the new median spawn time may exceed the old one by this fraction ...
    spawn_margin: float = 1.0
    # ... and by at least this many seconds before it counts (spawns are noisy)
    spawn_floor_s: float = 10.0
    hub: HubSettings = HubSettings()


@dataclass(frozen=True)
class Attempt:
    side: str
    user: str
    ok: bool
    step: str = ""  # the failed step: login, token, spawn
    reason: str = ""
    spawn_s: float | None = None
    already_running: bool = False


def attempt(dep: Deployment, user: str, settings: HubSettings) -> Attempt:
    """Log ``user`` in on ``dep`` and spawn its server; stop it again afterwards."""
    if not dep.hub_url:
        return Attempt(dep.label, user, False, "login", "no hub URL given")
    try:
        with HubUser(dep.hub_url, user, dep.hub_password, settings) as hub_user:
            hub_user.login()
            spawn_s = hub_user.spawn()
            return Attempt(
                dep.label, user, True, spawn_s=spawn_s, already_running=hub_user.already_running
            )
    except HubStepError as e:
        return Attempt(dep.label, user, False, e.step, e.reason)


def check_logins(
    old: Deployment,
    new: Deployment,
    users: Sequence[str],
    settings: LoginSettings | None = None,
    progress: Progress = lambda _m: None,
) -> CheckResult:
    settings = settings or LoginSettings()
    started = time.monotonic()
    attempts: dict[str, list[Attempt]] = {"old": [], "new": []}
    for i, user in enumerate(users, 1):
        for dep in (old, new):  # alternate, so both sides see the same background load
            a = attempt(dep, user, settings.hub)
            attempts[dep.label].append(a)
            spawn = f", spawn {a.spawn_s:.1f} s" if a.spawn_s is not None else ""
            status = "ok" if a.ok else f"failed at {a.step}: {a.reason}"
            progress(f"verify logins: {i}/{len(users)} {user} on {dep.label}: {status}{spawn}")
    result = compare_attempts(attempts["old"], attempts["new"], settings)
    return replace(result, elapsed_s=round(time.monotonic() - started, 2))


def compare_attempts(
    old: Sequence[Attempt], new: Sequence[Attempt], settings: LoginSettings
) -> CheckResult:
    """Per user: works on old but not on new is a difference; then the median spawn time."""
    diffs: list[Difference] = []
    notes: list[str] = []
    for a_old, a_new in zip(old, new, strict=True):
        if a_old.ok and not a_new.ok:
            kind = "login-failed" if a_new.step in ("login", "token") else "spawn-failed"
            diffs.append(
                Difference(
                    kind, f"user {a_new.user}", "ok", f"failed at {a_new.step}", a_new.reason
                )
            )
        elif not a_old.ok:
            notes.append(
                f"user {a_old.user} fails on old too ({a_old.step}: {a_old.reason}); "
                "not counted against new"
            )
    both = [
        (o.spawn_s, n.spawn_s)
        for o, n in zip(old, new, strict=True)
        if o.spawn_s is not None and n.spawn_s is not None
    ]
    medians = None
    if both:
        med_old = statistics.median(o for o, _ in both)
        med_new = statistics.median(n for _, n in both)
        medians = {"old_median_spawn_s": round(med_old, 2), "new_median_spawn_s": round(med_new, 2)}
        limit = max(med_old * (1 + settings.spawn_margin), med_old + settings.spawn_floor_s)
        if med_new > limit:
            diffs.append(
                Difference(
                    "slower-spawn",
                    "median spawn time",
                    f"{med_old:.1f} s",
                    f"{med_new:.1f} s",
                    f"limit {limit:.1f} s",
                )
            )
    ok_old = sum(a.ok for a in old)
    ok_new = sum(a.ok for a in new)
    details = {
        "users": len(old),
        "ok_old": ok_old,
        "ok_new": ok_new,
        "spawn": medians,
        "attempts": [asdict(a) for a in (*old, *new)],
        "notes": notes,
    }
    summary = f"{ok_new}/{len(new)} users logged in and spawned on new ({ok_old}/{len(old)} on old)"
    if medians:
        summary += (
            f"; median spawn {medians['old_median_spawn_s']:.1f} s old, "
            f"{medians['new_median_spawn_s']:.1f} s new"
        )
    if diffs:
        status = FAIL
    elif ok_old == 0:
        status, summary = INCONCLUSIVE, f"no sample user works on old either: {summary}"
    else:
        status = PASS
    critical = ok_old > 0 and ok_new == 0
    if critical:
        summary += "; the new deployment serves none of the sample users"
    return CheckResult("logins", status, summary, tuple(diffs), details, critical=critical)


def sample_users(spec: str | int | Sequence[str]) -> tuple[str, ...]:
    """``3`` -> labcap-verify-1..3; ``alice,bob`` -> those users."""
    from labcap.errors import LabcapError

    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        n = int(spec)
        if not 1 <= n <= 100:
            raise LabcapError(f"--sample-users {spec}: give 1 to 100 generated users, or a list")
        return tuple(f"labcap-verify-{i}" for i in range(1, n + 1))
    names = [u.strip() for u in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [u for u in names if u]
    if not names:
        raise LabcapError("--sample-users is empty: give a number or a comma-separated list")
    bad = [u for u in names if any(c.isspace() or c in "/?#%" for c in u)]
    if bad:
        raise LabcapError(f"--sample-users: {', '.join(bad)} is not a valid user name")
    return tuple(dict.fromkeys(names))
