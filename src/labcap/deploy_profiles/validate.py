"""Validation of rendered profiles, before anything is written.

- Every YAML file must parse.
- Kubernetes objects are checked against the Kubernetes OpenAPI JSON schemas that the
  ``kubernetes-validate`` package ships (strict: unknown fields are errors), offline, for
  ``K8S_VERSION``; then cross-references inside the profile (a Service selects a pod
  template, a volume names a rendered ConfigMap/PVC, an env var a key of the Secret).
- The Compose file is checked against the Compose Specification JSON schema vendored in
  ``schemas/compose_spec.json`` (2021, see ``schemas/NOTICE.md``), then structurally:
  every ``${VAR}`` is defined in the generated ``.env``, every long-running service has a
  health check, a restart policy and resource limits, ``depends_on`` and volume names resolve.
- Generated Python (jupyterhub_config.py) must compile; generated shell must pass ``bash -n``.

Schemas say what is well formed, not what works: no API server or Docker engine is asked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from labcap.errors import LabcapError, MissingExtraError

# K3s's stable channel is on Kubernetes 1.3x; 1.31 is the oldest minor still maintained
# upstream when this was written, so manifests valid there are valid on newer K3s too.
K8S_VERSION = "1.31.0"
COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose_spec.json"
# Objects a profile names but does not create: made by the operator or by K3s itself.
EXTERNAL_SECRETS = frozenset({"ailab-tls"})


class ProfileValidationError(LabcapError):
    """A rendered profile failed validation; nothing was written."""


def parse_yaml(name: str, text: str) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ProfileValidationError(f"{name}:{line} not valid YAML ({e})") from None


def check_python(name: str, text: str) -> None:
    try:
        compile(text, name, "exec")
    except SyntaxError as e:
        raise ProfileValidationError(f"{name}: line {e.lineno}: {e.msg}") from None


def check_shell(name: str, text: str) -> bool:
    """``bash -n`` on the script; False when no bash is installed to ask."""
    bash = shutil.which("bash")
    if not bash:
        return False
    proc = subprocess.run([bash, "-n"], input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ProfileValidationError(f"{name}: bash -n: {proc.stderr.strip()}")
    return True


# --- Kubernetes -------------------------------------------------------------------------


def k8s_validator_version() -> str:
    try:
        from kubernetes_validate.version import __version__
    except ImportError:
        raise MissingExtraError("kubernetes-validate", "profiles") from None
    return str(__version__)


def k8s_schema_version() -> str:
    """``K8S_VERSION`` if the installed kubernetes-validate ships it, else the oldest newer one."""
    from kubernetes_validate.utils import all_versions

    want = tuple(int(x) for x in K8S_VERSION.split(".")[:2])
    shipped = [v for v in all_versions() if tuple(int(x) for x in v.split(".")[:2]) >= want]
    if not shipped:
        raise LabcapError(f"kubernetes-validate ships no schemas for Kubernetes {K8S_VERSION}+")
    return shipped[0]


def validate_k8s(objects: Iterable[tuple[str, Any]], version: str | None = None) -> int:
    """Schema-validate every (file, object); then cross-check references. Returns the count."""
    import kubernetes_validate as kv

    version = version or k8s_schema_version()
    objs = list(objects)
    for name, obj in objs:
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            raise ProfileValidationError(f"{name}: a document without kind/apiVersion")
        what = f"{name}: {obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(top)"
            raise ProfileValidationError(
                f"{what} does not validate against Kubernetes {version} at {path}: {e.message}"
            ) from None
        except kv.SchemaNotFoundError:
            raise ProfileValidationError(
                f"{what}: no Kubernetes {version} schema for {obj['apiVersion']} {obj['kind']}"
            ) from None
    check_references(objs)
    return len(objs)


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return (obj["kind"], meta.get("namespace", ""), meta.get("name", ""))


def _pod_templates(obj: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
        return [(obj["metadata"].get("namespace", ""), obj["spec"]["template"])]
    return []


def check_references(objs: list[tuple[str, Any]]) -> None:
    """Names that must resolve inside the profile: selectors, volumes, Secret keys, backends."""
    have = {_key(o) for _, o in objs}
    secret_keys: dict[tuple[str, str], set[str]] = {}
    for _, o in objs:
        if o["kind"] == "Secret":
            keys = set(o.get("stringData", {})) | set(o.get("data", {}))
            secret_keys[(o["metadata"].get("namespace", ""), o["metadata"]["name"])] = keys
    templates = [t for _, o in objs for t in _pod_templates(o)]
    for name, o in objs:
        ns = o.get("metadata", {}).get("namespace", "")
        where = f"{name}: {o['kind']}/{o['metadata']['name']}"
        for tns, tmpl in _pod_templates(o):
            _check_pod(where, tns, tmpl, have, secret_keys)
            selector = o["spec"]["selector"].get("matchLabels", {})
            labels = tmpl.get("metadata", {}).get("labels", {})
            if any(labels.get(k) != v for k, v in selector.items()):
                raise ProfileValidationError(f"{where}: selector does not match its pod labels")
        if o["kind"] == "Service":
            sel = o["spec"].get("selector", {})
            if not any(
                t_ns == ns
                and all(t.get("metadata", {}).get("labels", {}).get(k) == v for k, v in sel.items())
                for t_ns, t in templates
            ):
                raise ProfileValidationError(f"{where}: its selector {sel} matches no pod template")
        if o["kind"] == "Ingress":
            for rule in o["spec"].get("rules", []):
                for p in rule.get("http", {}).get("paths", []):
                    svc = p["backend"]["service"]["name"]
                    if ("Service", ns, svc) not in have:
                        raise ProfileValidationError(f"{where}: backend Service {svc!r} missing")
        if o["kind"] == "RoleBinding":
            ref = o["roleRef"]
            if ref["kind"] == "Role" and ("Role", ns, ref["name"]) not in have:
                raise ProfileValidationError(f"{where}: Role {ref['name']!r} missing")
            for s in o.get("subjects", []):
                if (
                    s["kind"] == "ServiceAccount"
                    and (
                        "ServiceAccount",
                        s.get("namespace", ns),
                        s["name"],
                    )
                    not in have
                ):
                    raise ProfileValidationError(f"{where}: ServiceAccount {s['name']!r} missing")
        if ns and ("Namespace", "", ns) not in have and ns != "kube-system":
            raise ProfileValidationError(f"{where}: namespace {ns!r} is not created")


def _check_pod(
    where: str,
    ns: str,
    tmpl: Mapping[str, Any],
    have: set[tuple[str, str, str]],
    secret_keys: dict[tuple[str, str], set[str]],
) -> None:
    spec = tmpl["spec"]
    rc = spec.get("runtimeClassName")
    if rc and ("RuntimeClass", "", rc) not in have:
        raise ProfileValidationError(f"{where}: RuntimeClass {rc!r} is not in the profile")
    sa = spec.get("serviceAccountName")
    if sa and ("ServiceAccount", ns, sa) not in have:
        raise ProfileValidationError(f"{where}: ServiceAccount {sa!r} missing")
    for vol in spec.get("volumes", []):
        if "configMap" in vol and ("ConfigMap", ns, vol["configMap"]["name"]) not in have:
            raise ProfileValidationError(f"{where}: ConfigMap {vol['configMap']['name']!r} missing")
        pvc = vol.get("persistentVolumeClaim", {}).get("claimName")
        if pvc and ("PersistentVolumeClaim", ns, pvc) not in have:
            raise ProfileValidationError(f"{where}: PersistentVolumeClaim {pvc!r} missing")
    for c in spec.get("containers", []):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if not ref or ref.get("optional"):
                continue
            keys = secret_keys.get((ns, ref["name"]))
            if keys is None and ref["name"] not in EXTERNAL_SECRETS:
                raise ProfileValidationError(f"{where}: Secret {ref['name']!r} missing")
            if keys is not None and ref["key"] not in keys:
                raise ProfileValidationError(
                    f"{where}: Secret {ref['name']!r} has no key {ref['key']!r}"
                )


# --- Compose ----------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])[^}]*)?\}")
# Services that run to completion on demand (docker compose --profile verify run ...).
ONE_SHOT_PROFILES = frozenset({"verify"})


@cache
def _compose_schema() -> dict[str, Any]:
    return json.loads(COMPOSE_SCHEMA.read_text())


def validate_compose(name: str, text: str, env: Mapping[str, str]) -> None:
    """The Compose file against the Compose spec schema and labcap's structural rules."""
    import jsonschema

    docs = parse_yaml(name, text)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ProfileValidationError(f"{name}: a Compose file is one YAML mapping")
    doc = docs[0]
    schema = _compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema, jsonschema.Draft7Validator)
    errors = sorted(validator_cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        path = ".".join(str(p) for p in e.path) or "(top)"
        raise ProfileValidationError(
            f"{name}: does not validate against the Compose spec schema at {path}: {e.message}"
        )
    for var, op in ((m.group(1), m.group(2)) for m in _VAR.finditer(text)):
        if var not in env and op not in (":-", "-"):
            raise ProfileValidationError(f"{name}: ${{{var}}} is not defined in .env")
    services = doc.get("services", {})
    volumes = set(doc.get("volumes", {}) or {})
    networks = set(doc.get("networks", {}) or {})
    for svc_name, svc in services.items():
        where = f"{name}: service {svc_name!r}"
        one_shot = bool(set(svc.get("profiles", [])) & ONE_SHOT_PROFILES)
        if not one_shot:
            if svc.get("restart") not in ("always", "unless-stopped", "on-failure"):
                raise ProfileValidationError(f"{where} has no restart policy")
            if "healthcheck" not in svc:
                raise ProfileValidationError(f"{where} has no health check")
            limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
            if "memory" not in limits or "cpus" not in limits:
                raise ProfileValidationError(f"{where} has no CPU and memory limits")
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                raise ProfileValidationError(f"{where} depends on unknown service {dep!r}")
            cond = deps[dep]["condition"] if isinstance(deps, dict) else None
            if cond == "service_healthy" and "healthcheck" not in services[dep]:
                raise ProfileValidationError(
                    f"{where} waits for {dep!r}, which has no health check"
                )
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith(("/", ".", "~")) and source not in volumes:
                raise ProfileValidationError(f"{where} mounts undeclared volume {source!r}")
        for net in svc.get("networks", []):
            if net not in networks:
                raise ProfileValidationError(f"{where} joins undeclared network {net!r}")
        for dev in (
            svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        ):
            if "gpu" not in dev.get("capabilities", []):
                raise ProfileValidationError(
                    f"{where}: a device reservation without gpu capability"
                )
            if "count" in dev and "device_ids" in dev:
                raise ProfileValidationError(
                    f"{where}: a device reservation sets count and device_ids"
                )


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments and blanks skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out
