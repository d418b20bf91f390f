"""Where the old and the new deployment answer, and the credentials to use them.

``--old`` / ``--new`` each take one of:

* a URL: the JupyterHub URL (``--old-mlflow``/``--new-mlflow`` add MLflow,
  ``--old-files``/``--new-files`` the home/project trees as local directories);
* a reference lab's work directory (``labcap lab up`` writes ``lab.json`` there);
* a target file (YAML or JSON) with the keys in ``TARGET_KEYS``.

Secrets never come from argv: ``LABCAP_OLD_HUB_PASSWORD``, ``LABCAP_OLD_HUB_TOKEN``,
``LABCAP_OLD_MLFLOW_TOKEN`` (``NEW`` likewise; ``LABCAP_HUB_PASSWORD`` is the
fallback password for both), or a ``--credentials`` file (mode 0600) with
``old:``/``new:`` sections holding ``hub_password``, ``hub_token``, ``mlflow_token``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.redact import redact_url

TARGET_KEYS = {
    "hub_url": "JupyterHub's public URL (required)",
    "mlflow_url": "MLflow tracking server URL",
    "files": "local directories holding the users' home/project trees (list)",
    "profile": "`labcap profile` output directory (or its sizing.json): the expected GPU plan",
    "gpu": "the expected GPU plan inline: gpus, sharing, time_slicing_replicas, "
    "mig_devices_per_gpu, spawn_options (the user_options of a GPU server, e.g. "
    "{profile: gpu-1} on K3s, {image: GPU share} on Compose)",
}
SECRET_KEYS = ("hub_password", "hub_token", "mlflow_token")
_FORMS = (
    "a URL (http:// or https://), a reference lab work directory (with lab.json), "
    "or a target file (.yaml/.yml/.json)"
)


@dataclass(frozen=True)
class Deployment:
    """One side of the comparison. Never log it whole: use :meth:`describe`."""

    label: str  # "old" or "new"
    source: str
    hub_url: str = ""
    mlflow_url: str = ""
    file_roots: tuple[Path, ...] = ()
    gpu_plan: Mapping[str, Any] | None = None
    hub_password: str = field(default="", repr=False)
    hub_token: str = field(default="", repr=False)
    mlflow_token: str = field(default="", repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.hub_password, self.hub_token, self.mlflow_token) if s)

    def describe(self) -> dict[str, Any]:
        """What may be printed or written: URLs without credentials, no secret."""
        return {
            "source": redact_url(self.source) if "://" in self.source else self.source,
            "hub_url": redact_url(self.hub_url) if self.hub_url else "",
            "mlflow_url": redact_url(self.mlflow_url) if self.mlflow_url else "",
            "files": [str(p) for p in self.file_roots],
            "gpu_plan": dict(self.gpu_plan) if self.gpu_plan else None,
            "credentials": {k: bool(getattr(self, k)) for k in SECRET_KEYS},
        }


def resolve_deployment(
    label: str,
    text: str,
    *,
    mlflow_url: str | None = None,
    files: Sequence[str | Path] = (),
    profile: str | Path | None = None,
    credentials: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    """Build one side from ``--old``/``--new`` text plus its options and credentials."""
    env = os.environ if env is None else env
    text = str(text).strip()
    if not text:
        raise LabcapError(f"--{label} is empty; give {_FORMS}")
    fields: dict[str, Any] = {}
    lab_secrets: dict[str, str] = {}
    if text.startswith(("http://", "https://")):
        fields["hub_url"] = text
    else:
        path = Path(text)
        if path.is_dir() and (path / "lab.json").is_file():
            fields, lab_secrets = _from_lab_dir(path)
        elif path.is_file() and path.suffix.lower() in (".yaml", ".yml", ".json"):
            fields = _from_target_file(label, path)
        elif path.is_dir() and (path / "sizing.json").is_file():
            raise LabcapError(
                f"--{label} {text} is a `labcap profile` directory: it gives the GPU plan, not "
                "where the deployment answers; pass the hub URL and --profile DIR"
            )
        else:
            raise LabcapError(f"--{label} {text!r} is neither {_FORMS}")
    if mlflow_url:
        fields["mlflow_url"] = mlflow_url
    if files:
        fields["files"] = [*fields.get("files", []), *files]
    if profile:
        fields["gpu"] = read_gpu_plan(profile)
    secrets = _secrets(label, lab_secrets, credentials or {}, env)
    return _build(label, text, fields, secrets)


def _build(label: str, source: str, f: Mapping[str, Any], secrets: dict[str, str]) -> Deployment:
    hub_url = str(f.get("hub_url") or "").rstrip("/")
    mlflow_url = str(f.get("mlflow_url") or "").rstrip("/")
    for what, url in (("hub_url", hub_url), ("mlflow_url", mlflow_url)):
        if url and not url.startswith(("http://", "https://")):
            raise LabcapError(f"--{label}: {what} {url!r} must start with http:// or https://")
    roots = []
    for item in f.get("files") or []:
        root = Path(str(item)).expanduser()
        if not root.is_dir():
            raise LabcapError(f"--{label}: file tree {root} is not a directory")
        roots.append(root.absolute())
    return Deployment(
        label=label,
        source=source,
        hub_url=hub_url,
        mlflow_url=mlflow_url,
        file_roots=tuple(roots),
        gpu_plan=f.get("gpu"),
        **secrets,
    )


def _from_lab_dir(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    from labcap.lab import read_state

    state = read_state(path)
    assert state is not None  # lab.json exists
    endpoints = state.get("endpoints", {})
    fields: dict[str, Any] = {
        "hub_url": endpoints.get("hub_url", ""),
        "mlflow_url": endpoints.get("mlflow_url", ""),
    }
    home = path / "home"
    if home.is_dir():
        fields["files"] = [home]
    secrets = {
        "hub_password": endpoints.get("hub_password", ""),
        "hub_token": endpoints.get("api_token", ""),
    }
    return fields, secrets


def _from_target_file(label: str, path: Path) -> dict[str, Any]:
    data = _load_mapping(path, f"--{label} target file")
    unknown = sorted(set(data) - set(TARGET_KEYS))
    if unknown:
        secretish = [k for k in unknown if k in SECRET_KEYS]
        hint = " (secrets go in --credentials or environment variables)" if secretish else ""
        raise LabcapError(
            f"--{label} target file {path}: unknown key(s) {', '.join(unknown)}{hint}; "
            f"valid: {', '.join(TARGET_KEYS)}"
        )
    if not data.get("hub_url"):
        raise LabcapError(f"--{label} target file {path}: hub_url is required")
    files = data.get("files") or []
    if isinstance(files, str):
        files = [files]
    data["files"] = [str(path.parent / Path(str(p)).expanduser()) for p in files]
    if data.get("profile"):
        profile = Path(str(data["profile"])).expanduser()
        data["gpu"] = read_gpu_plan(path.parent / profile)
    elif data.get("gpu") is not None:
        data["gpu"] = _check_gpu_plan(data["gpu"], str(path))
    return data


def read_gpu_plan(profile: str | Path) -> dict[str, Any]:
    """The GPU plan of a `labcap profile` directory (its sizing.json ``gpu`` section)."""
    path = Path(profile)
    sizing = path / "sizing.json" if path.is_dir() else path
    data = _load_mapping(sizing, "profile")
    if "gpu" not in data:
        raise LabcapError(f"profile {sizing} has no gpu section (not a labcap sizing.json?)")
    plan = _check_gpu_plan(data["gpu"], str(sizing))
    platform = data.get("platform")
    if "spawn_options" not in plan and plan["gpus"] and platform in ("k3s", "compose"):
        # a profile rendered before sizing.json named them: what its hub config offers
        from labcap.deploy_profiles.gpu import COMPOSE_GPU_CHOICE

        k3s = platform == "k3s"
        plan["spawn_options"] = {"profile": "gpu-1"} if k3s else {"image": COMPOSE_GPU_CHOICE}
    return plan


def _check_gpu_plan(plan: Any, where: str) -> dict[str, Any]:
    if not isinstance(plan, dict):
        raise LabcapError(f"{where}: gpu must be a mapping (gpus, sharing, ...)")
    try:
        gpus = int(plan.get("gpus", 0))
    except (TypeError, ValueError):
        raise LabcapError(f"{where}: gpu.gpus {plan.get('gpus')!r} is not a number") from None
    sharing = str(plan.get("sharing") or "none")
    if sharing not in ("none", "time-slicing", "mig"):
        raise LabcapError(
            f"{where}: gpu.sharing {sharing!r} is unknown; valid: none, time-slicing, mig"
        )
    options = plan.get("spawn_options")
    if options is not None and not (
        isinstance(options, dict) and all(isinstance(k, str) for k in options)
    ):
        raise LabcapError(
            f"{where}: gpu.spawn_options must be a mapping of user_options, e.g. {{profile: gpu-1}}"
        )
    return {**plan, "gpus": gpus, "sharing": sharing}


def read_credentials(path: str | Path) -> dict[str, dict[str, str]]:
    """``old``/``new`` secrets from a YAML/JSON file that only its owner may read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise LabcapError(f"--credentials {path}: {e.strerror or e}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LabcapError(
            f"--credentials {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"chmod 600 {path}"
        )
    data = _load_mapping(path, "--credentials")
    out: dict[str, dict[str, str]] = {}
    for side, values in data.items():
        if side not in ("old", "new") or not isinstance(values, dict):
            raise LabcapError(
                f"--credentials {path}: top-level keys are old and new, each a mapping"
            )
        unknown = sorted(set(values) - set(SECRET_KEYS))
        if unknown:
            raise LabcapError(
                f"--credentials {path}: unknown key(s) {', '.join(unknown)} under {side}; "
                f"valid: {', '.join(SECRET_KEYS)}"
            )
        out[side] = {k: str(v) for k, v in values.items() if v is not None}
    return out


def _secrets(
    label: str, lab: Mapping[str, str], from_file: Mapping[str, str], env: Mapping[str, str]
) -> dict[str, str]:
    """Precedence: environment variable, then --credentials, then the lab's own lab.json."""
    prefix = f"LABCAP_{label.upper()}_"
    out = {}
    for key in SECRET_KEYS:
        value = env.get(prefix + key.upper()) or from_file.get(key) or lab.get(key, "")
        if key == "hub_password" and not value:
            value = env.get("LABCAP_HUB_PASSWORD", "")
        out[key] = value
    return out


def _load_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise LabcapError(f"{what} {path}: {e.strerror or e}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # json and yaml raise different types; both mean malformed
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LabcapError(f"{what} {path} is not valid YAML/JSON: {first}") from None
    if not isinstance(data, dict):
        raise LabcapError(f"{what} {path} must hold a mapping")
    return data
