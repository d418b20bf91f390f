"""A real MLflow with its basic-auth app (``mlflow server --app-name basic-auth``) on loopback:
its own tracking and auth sqlite databases, an admin whose password only the test knows."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests


@dataclass
class AuthMLflow:
    url: str
    admin: str
    password: str = field(repr=False)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


@contextlib.contextmanager
def running_auth_mlflow(
    workdir: Path, timeout_s: float = 120, static_prefix: str = ""
) -> Iterator[AuthMLflow]:
    """``static_prefix``: MLflow's routes under a path (e.g. behind JupyterHub's proxy as
    the service /services/mlflow)."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow not installed (labcap[lab])")
    workdir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    ini = workdir / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{workdir / 'auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = _port()
    mlflow = Path(sys.executable).parent / "mlflow"
    argv = [
        str(mlflow) if mlflow.is_file() else sys.executable,
        *([] if mlflow.is_file() else ["-m", "mlflow"]),
        "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", str(workdir / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        *(["--static-prefix", static_prefix] if static_prefix else []),
    ]  # fmt: skip
    env = dict(
        os.environ,
        MLFLOW_AUTH_CONFIG_PATH=str(ini),
        MLFLOW_AUTH_ADMIN_PASSWORD=password,
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    log = open(workdir / "mlflow.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                tail = (workdir / "mlflow.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"mlflow exited ({proc.returncode}): {tail}")
            with contextlib.suppress(requests.RequestException):
                s = requests.Session()
                s.trust_env = False
                if s.get(f"{url}{static_prefix}/health", timeout=3).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("the basic-auth MLflow did not come up")
            time.sleep(0.5)
        yield AuthMLflow(url, "admin", password)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
