"""MLflow's credentials, read as MLflow's own clients read them, and a check of them.

``MLFLOW_TRACKING_USERNAME`` + ``MLFLOW_TRACKING_PASSWORD``: HTTP basic auth (MLflow's
``basic-auth`` app); else ``MLFLOW_TRACKING_TOKEN``: a bearer token (an MLflow behind an
OAuth proxy, or behind JupyterHub's proxy as a hub service). ``MLFLOW_TRACKING_SERVER_CERT_PATH``
is a CA bundle for MLflow alone (else labcap's: ``clients.http``). The values are never
printed or written.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from labcap.clients.http import requests_verify
from labcap.errors import LabcapError
from labcap.redact import redact_url

USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
CERT_ENV = "MLFLOW_TRACKING_SERVER_CERT_PATH"
API = "/api/2.0/mlflow"


def auth_headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Authorization header MLflow's client would send (none without credentials)."""
    env = os.environ if env is None else env
    user, password, token = env.get(USERNAME_ENV), env.get(PASSWORD_ENV), env.get(TOKEN_ENV)
    if user and password:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {basic}"}
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {}


def secrets_of(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if env is None else env
    return tuple(v for k in (PASSWORD_ENV, TOKEN_ENV) if (v := env.get(k)))


def ca_file(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if env.get(CERT_ENV):
        return env[CERT_ENV]
    verify = requests_verify(env)
    return verify if isinstance(verify, str) else None


def check_credentials(url: str, timeout_s: float = 15.0) -> None:
    """Before the load: MLflow at ``url`` accepts the environment's credentials (or needs
    none). A refusal is one LabcapError line; other trouble is left to the run."""
    import requests

    headers = auth_headers()
    try:
        r = requests.get(
            f"{url.rstrip('/')}{API}/experiments/search",
            params={"max_results": 1},
            headers=headers,
            timeout=timeout_s,
            verify=ca_file() or True,
        )
    except requests.RequestException:
        return  # reachability was checked before; the run reports what happens
    if r.status_code in (401, 403):
        how = (
            "refused the credentials in $MLFLOW_TRACKING_USERNAME/PASSWORD or "
            "$MLFLOW_TRACKING_TOKEN"
            if headers
            else "asks for credentials: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
        )
        raise LabcapError(f"MLflow at {redact_url(url)} {how} (HTTP {r.status_code})")
