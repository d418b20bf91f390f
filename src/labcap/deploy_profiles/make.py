"""``labcap profile`` as one call: the profile, its optional load generator, and its text.

``make_profile`` checks the options (``settings.ProfileOptions``), renders the load
generator (``--loadgen k8s``) and the profile (validated before anything is written),
writes both, and returns what ``describe_profile`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from labcap.deploy_profiles.dryrun import server_checker
from labcap.deploy_profiles.loadgen import render_loadgen
from labcap.deploy_profiles.render import Profile, build_profile
from labcap.deploy_profiles.settings import LOADGEN_CHOICES, ProfileOptions
from labcap.deploy_profiles.sizing import ProfileSettings
from labcap.errors import LabcapError
from labcap.extras import require
from labcap.planner.capacity import plan_capacity
from labcap.store import RunDir, atomic_write_bytes

Progress = Callable[[str], None]


def profile_settings(opts: ProfileOptions) -> ProfileSettings:
    """The sizing the options ask for: each option named like a ``ProfileSettings`` field."""
    names = {f.name for f in fields(ProfileSettings)}
    return ProfileSettings(
        **{f.name: getattr(opts, f.name) for f in fields(opts) if f.name in names},
        images=tuple(pin.partition("=")[::2] for pin in opts.image_pins),
    )


def make_profile(opts: ProfileOptions, progress: Progress) -> Profile:
    """Render, validate and write the profile ``opts`` ask for (and its load generator)."""
    for module in ("jsonschema", "kubernetes_validate"):  # labcap[profiles]: one line if not
        require(module)
    settings = profile_settings(opts)
    if opts.validate_server and settings.platform != "k3s":
        raise LabcapError("--validate-server needs --platform k3s (Compose has no API server)")
    if opts.loadgen not in LOADGEN_CHOICES:
        raise LabcapError(f"--loadgen {opts.loadgen!r}: choose one of {', '.join(LOADGEN_CHOICES)}")
    loadgen = _loadgen_files(opts, settings) if opts.loadgen == "k8s" else None
    check = server_checker(opts.kubeconfig, opts.context) if opts.validate_server else None
    profile = build_profile(opts.run_dir, settings, opts.out, server_check=check)
    if loadgen:
        for name, text in loadgen[0].items():
            (opts.out / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(opts.out / name, text.encode("utf-8"))
        progress(f"load generator: {opts.out / 'loadgen'} ({loadgen[1]})")
    return profile


def _loadgen_files(opts: ProfileOptions, settings: ProfileSettings) -> tuple[dict[str, str], str]:
    users = settings.expected_users
    if not users:
        raise LabcapError("--loadgen k8s needs --expected-users N (the users to generate)")
    run = RunDir.open(opts.run_dir)
    manifest = run.read_manifest()
    hosts = manifest.hosts
    host = opts.loadgen_host or hosts.get("default") or next(iter(hosts.values()), "")
    if not host:
        raise LabcapError("--loadgen k8s: the run names no host; give --loadgen-host URL")
    steps = list(plan_capacity(run).steps)
    return render_loadgen(
        manifest,
        steps,
        users=users,
        host=host,
        master=opts.loadgen_master,
        host_network=opts.loadgen_host_network,
    )


def describe_profile(profile: Profile, opts: ProfileOptions) -> str:
    """Each sizing decision with its source, the warnings, the server's verdict (with
    validate_server), and where the files went."""
    lines = [
        f"  {d.key:<30} {d.value!s:>8} {d.unit:<11} {d.source}" for d in profile.sizing.decisions
    ]
    lines += [f"warning: {w}" for w in profile.sizing.warnings]
    if opts.validate_server:
        lines.append(profile.checks[-1])
    lines.append(f"{opts.platform} profile: {len(profile.files)} files in {opts.out} (RUNBOOK.md)")
    return "\n".join(lines)
