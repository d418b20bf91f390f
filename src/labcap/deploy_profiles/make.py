"""``labcap profile`` as one call: the profile, its optional load generator, and its text.

``make_profile`` checks the request, renders the load generator (``--loadgen k8s``) and
the profile (validated before anything is written), writes both, and returns what
``describe_profile`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labcap.deploy_profiles.dryrun import server_checker
from labcap.deploy_profiles.loadgen import render_loadgen
from labcap.deploy_profiles.render import Profile, build_profile
from labcap.deploy_profiles.sizing import ProfileSettings
from labcap.errors import LabcapError
from labcap.planner.capacity import plan_capacity
from labcap.store import RunDir, atomic_write_bytes

Progress = Callable[[str], None]
LOADGEN_CHOICES = ("none", "k8s")


@dataclass(frozen=True)
class ProfileRequest:
    """One ``labcap profile``: the run, where to write, the sizing, and the extras."""

    run_dir: Path
    out: Path
    settings: ProfileSettings
    validate_server: bool = False  # k3s: dry-run every object on a live API server first
    kubeconfig: str | None = None  # for validate_server
    context: str | None = None
    loadgen: str = "none"  # k8s: also write loadgen/ (Locust master and workers)
    loadgen_host: str | None = None  # the URL the workers load [default: the run's host]


def make_profile(req: ProfileRequest, progress: Progress) -> Profile:
    """Render, validate and write the profile ``req`` asks for (and its load generator)."""
    if req.validate_server and req.settings.platform != "k3s":
        raise LabcapError("--validate-server needs --platform k3s (Compose has no API server)")
    if req.loadgen not in LOADGEN_CHOICES:
        raise LabcapError(f"--loadgen {req.loadgen!r}: choose one of {', '.join(LOADGEN_CHOICES)}")
    loadgen = _loadgen_files(req) if req.loadgen == "k8s" else None
    check = server_checker(req.kubeconfig, req.context) if req.validate_server else None
    profile = build_profile(req.run_dir, req.settings, req.out, server_check=check)
    if loadgen:
        for name, text in loadgen[0].items():
            (req.out / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(req.out / name, text.encode("utf-8"))
        progress(f"load generator: {req.out / 'loadgen'} ({loadgen[1]})")
    return profile


def _loadgen_files(req: ProfileRequest) -> tuple[dict[str, str], str]:
    users = req.settings.expected_users
    if not users:
        raise LabcapError("--loadgen k8s needs --expected-users N (the users to generate)")
    run = RunDir.open(req.run_dir)
    manifest = run.read_manifest()
    hosts = manifest.hosts
    host = req.loadgen_host or hosts.get("default") or next(iter(hosts.values()), "")
    if not host:
        raise LabcapError("--loadgen k8s: the run names no host; give --loadgen-host URL")
    steps = list(plan_capacity(run).steps)
    return render_loadgen(manifest, steps, users=users, host=host)


def describe_profile(profile: Profile, req: ProfileRequest) -> str:
    """Each sizing decision with its source, the warnings, the server's verdict (with
    validate_server), and where the files went."""
    lines = [
        f"  {d.key:<30} {d.value!s:>8} {d.unit:<11} {d.source}" for d in profile.sizing.decisions
    ]
    lines += [f"warning: {w}" for w in profile.sizing.warnings]
    if req.validate_server:
        lines.append(profile.checks[-1])
    lines.append(
        f"{req.settings.platform} profile: {len(profile.files)} files in {req.out} (RUNBOOK.md)"
    )
    return "\n".join(lines)
