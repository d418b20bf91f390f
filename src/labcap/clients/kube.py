"""The Kubernetes API client: kubeconfig discovery, connecting, and the one-line text of an
API problem. Never puts a credential in a message: errors name the file, context and
server only.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError, MissingExtraError
from labcap.redact import redact_url, scrub

K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
USER_KUBECONFIG = "~/.kube/config"


@dataclass(frozen=True)
class KubeTarget:
    """A connected API server: the client to hand to collectors, and where it points."""

    api_client: Any = field(repr=False)
    server: str
    context: str
    kubeconfig: str
    version: str


def resolve_kubeconfig(kubeconfig: str | None, env: dict[str, str] | None = None) -> str:
    """The kubeconfig to use: --kubeconfig, $KUBECONFIG, ~/.kube/config, then K3s's file."""
    env = dict(os.environ) if env is None else env
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise LabcapError(f"kubeconfig {kubeconfig} does not exist")
        return str(path)
    if env.get("KUBECONFIG"):
        paths = [p for p in env["KUBECONFIG"].split(os.pathsep) if p]
        present = [p for p in paths if Path(p).expanduser().is_file()]
        if not present:
            raise LabcapError(f"KUBECONFIG names no existing file ({env['KUBECONFIG']})")
        return os.pathsep.join(str(Path(p).expanduser()) for p in present)
    for candidate in (USER_KUBECONFIG, K3S_KUBECONFIG):
        path = Path(candidate).expanduser()
        if path.is_file():
            if not os.access(path, os.R_OK):
                raise LabcapError(
                    f"kubeconfig {path} is not readable (K3s writes it mode 0600: run as root, "
                    "or copy it and pass --kubeconfig)"
                )
            return str(path)
    raise LabcapError(
        "no kubeconfig: pass --kubeconfig or set KUBECONFIG "
        f"(looked in {USER_KUBECONFIG} and {K3S_KUBECONFIG})"
    )


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    pool: int = 16,
    timeout_s: float = 10.0,
) -> KubeTarget:
    """Load the kubeconfig and check the API server answers; one-line LabcapError if not.

    Never puts a credential in a message: errors name the file, context and server only.
    """
    try:
        from kubernetes import client
        from kubernetes.config import kube_config
    except ImportError:
        raise MissingExtraError("kubernetes", "k8s") from None
    path = resolve_kubeconfig(kubeconfig)
    cfg = client.Configuration()
    try:
        kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except Exception as e:
        raise LabcapError(_config_problem(path, context, e)) from None
    cfg.retries = 1  # a dead server must be noticed in seconds, not after urllib3's retries
    cfg.connection_pool_maxsize = max(pool, 4)
    server = redact_url(cfg.host)
    used_context = context or _current_context(path)
    api = client.ApiClient(cfg)
    try:
        resp = client.VersionApi(api).get_code(_request_timeout=(timeout_s, timeout_s))
        version = str(resp.git_version)
        # /version is often anonymous: check the credentials on a call that needs them
        # (403 is fine: a namespace-scoped account is authenticated, just not for this)
        try:
            client.CoreV1Api(api).list_namespace(limit=1, _request_timeout=(timeout_s, timeout_s))
        except Exception as e:
            if getattr(e, "status", None) != 403:
                raise
    except Exception as e:
        api.close()
        raise LabcapError(describe_api_problem(e, server)) from None
    return KubeTarget(api, server, used_context, path, version)


def _current_context(path: str) -> str:
    with contextlib.suppress(Exception):
        import yaml

        first = path.split(os.pathsep)[0]
        return str((yaml.safe_load(Path(first).read_text()) or {}).get("current-context") or "")
    return ""


def _config_problem(path: str, context: str | None, exc: BaseException) -> str:
    text = str(exc)
    names: list[str] = []
    with contextlib.suppress(Exception):
        import yaml

        for p in path.split(os.pathsep):
            doc = yaml.safe_load(Path(p).read_text()) or {}
            names += [str(c.get("name")) for c in doc.get("contexts") or [] if isinstance(c, dict)]
    if context and context not in names:
        known = ", ".join(names) or "none"
        return f"context {context!r} is not in kubeconfig {path} (contexts: {known})"
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"kubeconfig {path} is not usable: {scrub(first_line)[:200]}"


def describe_api_problem(exc: BaseException, server: str) -> str:
    """One line saying why the API server did not answer usefully."""
    status = getattr(exc, "status", None)
    if status == 401:
        return f"the Kubernetes API server at {server} rejected the credentials (401 Unauthorized)"
    if status == 403:
        return f"the Kubernetes API server at {server} refused access (403 Forbidden)"
    if isinstance(status, int) and status:
        reason = getattr(exc, "reason", "") or ""
        return f"the Kubernetes API server at {server} answered {status} {reason}".strip()
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__ or getattr(e, "reason", None)  # type: ignore[assignment]
        if not isinstance(e, BaseException):
            e = None
    text = " ".join(str(x) for x in chain)
    if any(isinstance(x, ConnectionRefusedError) for x in chain) or "refused" in text:
        return f"the Kubernetes API server at {server} is unreachable (connection refused)"
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text or "certificate" in text:
        return f"TLS to the Kubernetes API server at {server} failed (certificate not trusted?)"
    if "timed out" in text or "Timeout" in text:
        return f"the Kubernetes API server at {server} did not answer in time"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return f"the Kubernetes API server's host in {server} does not resolve"
    return f"the Kubernetes API server at {server} is unreachable: {type(exc).__name__}"
