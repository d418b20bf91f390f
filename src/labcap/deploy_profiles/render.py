"""Render a deployment profile (Compose or K3s), validate it, then write it.

``render_profile`` works in memory and raises before anything touches the disk;
``write_profile`` writes every file atomically; ``build_profile`` is what the CLI
calls: read the run, size, render, validate, write.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labcap.deploy_profiles import validate as v
from labcap.deploy_profiles.gpu import COMPOSE_GPU_CHOICE
from labcap.deploy_profiles.sizing import ProfileSettings, Sizing, size
from labcap.errors import LabcapError
from labcap.planner.bottleneck import Bottleneck, attribute_run
from labcap.planner.capacity import CapacityPlan
from labcap.store import RunDir, atomic_write_bytes

TEMPLATES = Path(__file__).parent / "templates"
PROFILE_KIND = "labcap-deploy-profile"
PROFILE_SCHEMA_VERSION = "1.0"
SIZING_FILE = "sizing.json"
NAMESPACE = "ailab"
USER_NAMESPACE = "ailab-users"

# Pinned at the time of writing; --image NAME=REF or the rendered files move them on.
# PostgreSQL 15: Debian bookworm's, which the end-to-end test builds its stand-in from.
# The notebook images are tagged by the JupyterHub version of their jupyterhub-singleuser.
IMAGES = {
    "postgres": "postgres:15-bookworm",
    "proxy": "quay.io/jupyterhub/configurable-http-proxy:4.6.1",
    "hub_base": "quay.io/jupyterhub/jupyterhub:5.2.1",
    "k8s_hub": "quay.io/jupyterhub/k8s-hub:4.1.0",
    "mlflow_base": "ghcr.io/mlflow/mlflow:v2.16.2",
    "notebook": "quay.io/jupyter/scipy-notebook:hub-5.2.1",
    "notebook_gpu": "quay.io/jupyter/pytorch-notebook:cuda12-hub-5.2.1",
    "cuda_base": "nvidia/cuda:12.4.1-base-ubuntu22.04",
    "device_plugin": "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
}

# (name, kind): the secrets a profile needs; "hex" ones are 32-byte keys JupyterHub reads as hex.
SECRET_SPECS = (
    ("POSTGRES_PASSWORD", "token"),
    ("HUB_DB_PASSWORD", "token"),
    ("MLFLOW_DB_PASSWORD", "token"),
    ("CONFIGPROXY_AUTH_TOKEN", "token"),
    ("JUPYTERHUB_CRYPT_KEY", "hex"),
    ("JPY_COOKIE_SECRET", "hex"),
)

SecretFactory = Callable[[str, str], str]
# Set by the operator in .env / secrets.yaml; kept when a profile is re-rendered.
ADMIN_USER_KEY = "HUB_ADMIN_USER"
DEFAULT_ADMIN_USER = "admin"  # a name, never a password: the admin signs up first
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
)


def random_secret(name: str, kind: str) -> str:
    """A fresh random value: 32 bytes, URL-safe text or hex."""
    return secrets.token_hex(32) if kind == "hex" else secrets.token_urlsafe(32)


@dataclass(frozen=True)
class RenderedFile:
    path: str  # relative to --out
    content: str
    mode: int = 0o644
    secret: bool = False


@dataclass(frozen=True)
class Profile:
    sizing: Sizing
    files: tuple[RenderedFile, ...]
    checks: tuple[str, ...] = field(default=())

    def file(self, path: str) -> RenderedFile:
        return next(f for f in self.files if f.path == path)

    def with_checks(self, *extra: str) -> Profile:
        """The same files plus more validation lines (sizing.json re-rendered to list them)."""
        files = tuple(f for f in self.files if f.path != SIZING_FILE)
        bare = Profile(self.sizing, files, (*self.checks, *extra))
        sizing_json = json.dumps(bare.to_dict(), indent=2, ensure_ascii=False) + "\n"
        return Profile(self.sizing, (*files, RenderedFile(SIZING_FILE, sizing_json)), bare.checks)

    def to_dict(self) -> dict[str, Any]:
        """sizing.json: every decision and its source; never a secret's value."""
        from labcap import __version__

        s = self.sizing
        inputs = asdict(s.settings)
        inputs["mig_profiles"] = list(s.settings.mig_profiles)
        inputs["admin_users"] = list(s.settings.admin_users)
        inputs["images"] = dict(s.settings.images)
        return {
            "schema_version": PROFILE_SCHEMA_VERSION,
            "kind": PROFILE_KIND,
            "labcap_version": __version__,
            "platform": s.platform,
            "measurement": s.measurement.to_dict(),
            "inputs": inputs,
            "decisions": [d.to_dict() for d in s.decisions],
            "gpu": {**s.gpu.to_dict(), "spawn_options": s.gpu.spawn_options(s.platform)},
            "warnings": list(s.warnings),
            "files": [
                {"path": f.path, "mode": f"{f.mode:04o}", "secret": f.secret}
                for f in self.files
                if f.path != SIZING_FILE
            ]
            + [{"path": SIZING_FILE, "mode": "0644", "secret": False}],
            "validation": list(self.checks),
        }


def _jinja_env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda x: json.dumps(x, ensure_ascii=False)
    env.filters["mem"] = lambda gib: _mem(gib, "")
    env.filters["k8smem"] = lambda gib: _mem(gib, "i")
    env.filters["cpu"] = _cpu
    return env


def _mem(gib: float, suffix: str) -> str:
    """GiB -> '4G'/'1536M' (Docker, JupyterHub: binary units) or '4Gi'/'1536Mi' (Kubernetes)."""
    mib = round(gib * 1024)
    return f"{mib // 1024}G{suffix}" if mib % 1024 == 0 else f"{mib}M{suffix}"


def _cpu(cores: float) -> str:
    """Cores -> a quoted Kubernetes quantity: '2' or '500m'."""
    milli = round(cores * 1000)
    return json.dumps(str(milli // 1000) if milli % 1000 == 0 else f"{milli}m")


def _check_settings(settings: ProfileSettings) -> None:
    if not _HOSTNAME.match(settings.domain):
        raise LabcapError(
            f"--domain {settings.domain!r} is not a host name (lower-case letters, digits, "
            "'-' and '.', e.g. lab.example.org)"
        )
    for name in settings.admin_users:
        if not _USERNAME.match(name):
            raise LabcapError(
                f"--admin-user {name!r} is not a hub user name (lower-case letters, digits, "
                "'.', '_' and '-', at most 64)"
            )
    for key, ref in settings.images:
        if key not in IMAGES:
            raise LabcapError(f"--image {key}=...: unknown image; choose from {', '.join(IMAGES)}")
        if not ref or any(ch.isspace() for ch in ref) or ref.endswith(":latest"):
            raise LabcapError(f"--image {key}={ref!r}: give a pinned reference (not :latest)")
    if settings.idle_timeout_s < 60:
        raise LabcapError(f"--idle-timeout {settings.idle_timeout_s}: at least 60 seconds")


def _admin_users(settings: ProfileSettings, found: Mapping[str, str]) -> str:
    """HUB_ADMIN_USER's value: the --admin-user names, else the .env's, else the default."""
    if settings.admin_users:
        return ",".join(dict.fromkeys(settings.admin_users))
    return found.get(ADMIN_USER_KEY) or DEFAULT_ADMIN_USER


def render_profile(
    plan: CapacityPlan,
    settings: ProfileSettings,
    *,
    secret_factory: SecretFactory = random_secret,
    existing_secrets: Mapping[str, str] | None = None,
    bottleneck: Bottleneck | None = None,
) -> Profile:
    """Size, render and validate a profile in memory. Raises LabcapError; writes nothing."""
    _check_settings(settings)
    sizing = size(plan, settings, bottleneck)
    found = existing_secrets or {}
    secret_values = [(k, found.get(k) or secret_factory(k, kind)) for k, kind in SECRET_SPECS]
    ctx = _context(sizing, secret_values)
    ctx["hub_admin_user"] = _admin_users(settings, found)
    env = _jinja_env()
    if settings.platform == "compose":
        files, checks = _render_compose(env, ctx)
    else:
        files, checks = _render_k3s(env, ctx)
    files.append(RenderedFile("images/mlflow.Dockerfile", _t(env, "common/mlflow.Dockerfile", ctx)))
    files.append(RenderedFile("RUNBOOK.md", _t(env, "common/RUNBOOK.md", ctx)))
    profile = Profile(sizing, tuple(files), tuple(checks))
    sizing_json = json.dumps(profile.to_dict(), indent=2, ensure_ascii=False) + "\n"
    _no_secret_leaks(profile, sizing_json, secret_values)
    return Profile(sizing, (*files, RenderedFile(SIZING_FILE, sizing_json)), tuple(checks))


def _t(env: Any, name: str, ctx: dict[str, Any]) -> str:
    return env.get_template(f"{name}.j2").render(**ctx)


def _context(sizing: Sizing, secret_values: list[tuple[str, str]]) -> dict[str, Any]:
    s, m, gpu = sizing.settings, sizing.measurement, sizing.gpu
    images = {**IMAGES, **dict(s.images)}
    images["notebook_cpu"] = images["notebook"]
    if gpu.enabled:
        images["notebook"] = images["notebook_gpu"]
    values = sizing.values()
    curve = m.spawn_curve
    spawn_text = (
        ", ".join(f"{p.p95_ms / 1000:.1f} s at {p.users}" for p in curve)
        if curve
        else "not measured (the run has no hub.spawn_ready)"
    )
    cap = m.max_users_at_slo
    if cap is None:
        capacity_text = "none: the run gives no capacity figure"
    else:
        band = m.band
        capacity_text = f"{cap} users" + (
            f" (between {band[0]} and {band[1]}: the first failing step)"
            if band and band[1] is not None
            else " (the run never reached its limit: a lower bound)"
        )
    return {
        "header": f"Generated by `labcap profile --platform {sizing.platform}`; re-render, "
        "don't edit.",
        "platform": sizing.platform,
        "v": values,
        "gpu": gpu,
        "gpu_ids": [str(i) for i in range(gpu.gpus)],
        "gpu_pool": list(gpu.device_pool()),
        "gpu_choice": COMPOSE_GPU_CHOICE,
        "mlflow_in_cluster_url": MLFLOW_IN_CLUSTER_URL.format(ns=NAMESPACE),
        "mlflow_allowed_hosts": ",".join(mlflow_allowed_hosts(NAMESPACE)),
        "gpu_label": "whole GPU" if gpu.sharing == "none" else f"GPU share ({gpu.sharing})",
        "gpu_text": _gpu_text(gpu),
        "images": images,
        "ns": NAMESPACE,
        "user_ns": USER_NAMESPACE,
        "domain": s.domain,
        "idle_timeout_s": s.idle_timeout_s,
        "secrets": secret_values,
        "measurement": {**m.to_dict(), "run_name": Path(m.run).name},
        "warnings": list(sizing.warnings),
        "capacity_text": capacity_text,
        "spawn_text": spawn_text,
        "spawn_at_design_text": (
            f"{values['hub']['spawn_p95_at_design_s']:g} s at {values['users']['design']} users"
            if curve
            else "(not measured)"
        ),
        "verify_steps": _verify_steps(values["users"]["planned"]),
    }


MLFLOW_IN_CLUSTER_URL = "http://mlflow.{ns}.svc.cluster.local:5000"


def mlflow_allowed_hosts(ns: str) -> tuple[str, ...]:
    """Host headers the K3s MLflow server answers: its Service names (with and without the
    port) and MLflow's own defaults (loopback, private addresses: the kubelet's probes)."""
    names = ("mlflow", f"mlflow.{ns}", f"mlflow.{ns}.svc", f"mlflow.{ns}.svc.cluster.local")
    loopback = ("localhost", "127.0.0.1")
    private = ("10.*", "172.1[6-9].*", "172.2[0-9].*", "172.3[01].*", "192.168.*")
    # "[::1]" matched exactly, "[[]::1]:*" as fnmatch reads it ("[" opens a set), as MLflow does
    ipv6 = ("[::1]", "[[]::1]:*", "fc00:*", "fd00:*")
    return (*(h for n in (*names, *loopback) for h in (n, f"{n}:*")), *private, *ipv6)


def _gpu_text(gpu: Any) -> str:
    if not gpu.enabled:
        return "none"
    if gpu.sharing == "time-slicing":
        how = f"time-slicing, {gpu.replicas} replicas per GPU"
    elif gpu.sharing == "mig":
        layout = " + ".join(f"{n} × {p}" for p, n in gpu.mig_devices)
        how = f"MIG on {gpu.gpu_model} ({gpu.mig_strategy}), per GPU {layout}"
    else:
        how = "whole GPUs"
    return f"{gpu.gpus} GPU(s), {how}: {gpu.capacity} shares for {gpu.gpu_users} GPU users"


def _verify_steps(planned: int) -> str:
    steps = sorted({max(1, planned // 10), max(1, planned // 4), max(1, planned // 2)})
    return ",".join(str(n) for n in steps)


def _render_compose(env: Any, ctx: dict[str, Any]) -> tuple[list[RenderedFile], list[str]]:
    compose = _t(env, "compose/docker-compose.yml", ctx)
    dotenv = _t(env, "compose/env", ctx)
    hub_config = _t(env, "compose/jupyterhub_config.py", ctx)
    init = _t(env, "common/postgres-init.sh", ctx)
    v.validate_compose("docker-compose.yml", compose, v.parse_env(dotenv))
    v.check_python("jupyterhub_config.py", hub_config)
    shell = v.check_shell("postgres-init.sh", init)
    checks = [
        "docker-compose.yml: valid against the Compose Specification JSON schema (vendored, "
        "2021 copy from docker-compose 1.29.2) and labcap's structural rules (${VARS} defined "
        "in .env, health checks, restart policies, resource limits, references)",
        "jupyterhub_config.py: compiles",
        "postgres-init.sh: "
        + ("bash -n passes" if shell else "not checked (no bash on this machine)"),
    ]
    files = [
        RenderedFile("docker-compose.yml", compose),
        RenderedFile(".env", dotenv, mode=0o600, secret=True),
        RenderedFile("jupyterhub_config.py", hub_config),
        RenderedFile("postgres-init.sh", init, mode=0o755),
        RenderedFile("images/hub.Dockerfile", _t(env, "compose/hub.Dockerfile", ctx)),
    ]
    return files, checks


def _device_plugin_config(gpu: Any) -> str:
    config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": gpu.mig_strategy or "none"}}
    if gpu.sharing == "time-slicing":
        config["sharing"] = {
            "timeSlicing": {
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": gpu.replicas}],
            }
        }
    return yaml.safe_dump(config, sort_keys=False)


def _mig_parted_config(gpu: Any) -> str:
    config = {
        "version": "v1",
        "mig-configs": {
            "labcap": [
                {"devices": "all", "mig-enabled": True, "mig-devices": dict(gpu.mig_devices)}
            ]
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


def _render_k3s(env: Any, ctx: dict[str, Any]) -> tuple[list[RenderedFile], list[str]]:
    gpu = ctx["gpu"]
    hub_config = _t(env, "k3s/jupyterhub_config.py", ctx)
    v.check_python("jupyterhub_config.py", hub_config)
    init = _t(env, "common/postgres-init.sh", ctx)
    shell = v.check_shell("postgres-init.sh", init)
    extra = {
        "hub_config": hub_config.rstrip("\n"),
        "postgres_init": init.rstrip("\n"),
        "device_plugin_config": _device_plugin_config(gpu).rstrip("\n"),
        "mig_parted_config": _mig_parted_config(gpu).rstrip("\n"),
    }
    names = ["00-namespaces"]
    if gpu.enabled:
        names += ["10-nvidia-runtimeclass", "20-nvidia-device-plugin"]
        if gpu.sharing == "mig":
            names.append("21-mig-parted-config")
    names += ["30-postgres", "40-mlflow", "50-hub", "60-proxy", "70-ingress", "80-user-quota"]
    names.append("90-network-policy")  # default deny, then only the lab's own paths
    files = [
        RenderedFile(f"manifests/{n}.yaml", _t(env, f"k3s/{n}.yaml", {**ctx, **extra}))
        for n in names
    ]
    files.append(RenderedFile("secrets.yaml", _t(env, "k3s/secrets.yaml", ctx), 0o600, True))
    objects = [(f.path, o) for f in files for o in v.parse_yaml(f.path, f.content)]
    # the embedded configs are YAML too: parse them back
    for f in files:
        for o in v.parse_yaml(f.path, f.content):
            if o.get("kind") == "ConfigMap" and "config.yaml" in o.get("data", {}):
                v.parse_yaml(f"{f.path} (config.yaml)", o["data"]["config.yaml"])
    count = v.validate_k8s(objects)
    checks = [
        f"manifests/*.yaml, secrets.yaml: {count} objects valid against the Kubernetes "
        f"{v.k8s_schema_version()} OpenAPI schemas (kubernetes-validate "
        f"{v.k8s_validator_version()}, "
        "strict: unknown fields rejected, offline); selectors, volumes, Secret keys, RBAC and "
        "Ingress backends resolve inside the profile",
        "jupyterhub_config.py (ConfigMap hub-config): compiles",
        "postgres-init.sh (ConfigMap postgres-init): "
        + ("bash -n passes" if shell else "not checked (no bash on this machine)"),
    ]
    return files, checks


# Values nobody should find in a generated secret, or as a password anywhere.
DEFAULT_PASSWORDS = frozenset(
    {"password", "changeme", "change-me", "admin", "secret", "postgres", "mlflow", "jupyter"}
)


def _no_secret_leaks(profile: Profile, sizing_json: str, values: list[tuple[str, str]]) -> None:
    for key, val in values:
        if not val or val.lower() in DEFAULT_PASSWORDS:
            raise LabcapError(f"{key} is empty or a default password; refusing to render")
        if val in sizing_json:
            raise LabcapError(f"{key} would leak into sizing.json; refusing to render")
        for f in profile.files:
            if not f.secret and val in f.content:
                raise LabcapError(f"{key} would leak into {f.path}; refusing to render")


# --- writing ----------------------------------------------------------------------------


def read_existing_secrets(out: Path) -> dict[str, str]:
    """Secrets of a profile already in ``out``: re-rendering must not lock out its database."""
    found: dict[str, str] = {}
    if (out / ".env").is_file():
        found.update(v.parse_env((out / ".env").read_text()))
    if (out / "secrets.yaml").is_file():
        with contextlib.suppress(LabcapError, AttributeError, TypeError):
            for doc in v.parse_yaml("secrets.yaml", (out / "secrets.yaml").read_text()):
                found.update({k: str(x) for k, x in doc.get("stringData", {}).items()})
    names = {k for k, _ in SECRET_SPECS} | {ADMIN_USER_KEY}
    return {k: x for k, x in found.items() if k in names and x}


def check_out_dir(out: Path, platform: str) -> list[str]:
    """Refuse an --out holding anything but an earlier profile for the same platform.

    Returns the files that earlier profile listed (to remove the ones no longer rendered).
    """
    if not out.exists():
        return []
    if not out.is_dir():
        raise LabcapError(f"--out {out} is a file, not a directory")
    if not any(out.iterdir()):
        return []
    previous = out / SIZING_FILE
    try:
        data = json.loads(previous.read_text())
    except (OSError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("kind") != PROFILE_KIND:
        raise LabcapError(
            f"--out {out} is not empty and holds no labcap profile: choose an empty directory"
        )
    if data.get("platform") != platform:
        raise LabcapError(
            f"--out {out} holds a {data.get('platform')} profile: write the {platform} profile "
            "to another directory"
        )
    return [f["path"] for f in data.get("files", []) if isinstance(f, dict) and "path" in f]


def write_profile(profile: Profile, out: Path, *, previous_files: Sequence[str] = ()) -> list[Path]:
    """Write every file atomically (sizing.json last); drop files the profile no longer has."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    ordered = sorted(profile.files, key=lambda f: f.path == SIZING_FILE)
    for f in ordered:
        path = out / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, f.content.encode("utf-8"), mode=f.mode)
        written.append(path)
    current = {f.path for f in profile.files}
    for stale in previous_files:
        target = (out / stale).resolve()
        if stale not in current and target.is_relative_to(out.resolve()):
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    return written


def build_profile(
    run_dir: str | Path,
    settings: ProfileSettings,
    out: str | Path,
    *,
    secret_factory: SecretFactory = random_secret,
    server_check: Callable[[Profile], str] | None = None,
) -> Profile:
    """Read a run, size and render its profile, validate it, and write it into ``out``.

    ``server_check`` (see ``dryrun.server_checker``) validates the rendered profile against a
    live API server before anything is written; its summary joins sizing.json's validation.
    """
    from labcap.planner.capacity import plan_run

    out = Path(out)
    previous = check_out_dir(out, settings.platform)
    plan = plan_run(str(run_dir))
    profile = render_profile(
        plan,
        settings,
        secret_factory=secret_factory,
        existing_secrets=read_existing_secrets(out) if previous else None,
        bottleneck=attribute_run(plan, RunDir.open(run_dir)),
    )
    if server_check is not None:
        profile = profile.with_checks(server_check(profile))
    write_profile(profile, out, previous_files=previous)
    return profile
