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
    env = dict(
        os.environ,
        MLFLOW_AUTH_CONFIG_PATH=str(ini),
        MLFLOW_AUTH_ADMIN_PASSWORD=password,
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
    )
    args = [
        "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", str(workdir / "artifacts"),
        *(["--static-prefix", static_prefix] if static_prefix else []),
    ]  # fmt: skip
    with mlflow_server_process(
        args, port, env, workdir / "mlflow.log", static_prefix, "the basic-auth MLflow", timeout_s
    ) as url:
        yield AuthMLflow(url, "admin", password)


@contextlib.contextmanager
def mlflow_server_process(
    args: list[str],
    port: int,
    env: dict[str, str],
    log_path: Path,
    health_prefix: str = "",
    what: str = "mlflow",
    timeout_s: float = 120,
) -> Iterator[str]:
    """``mlflow server ARGS`` on 127.0.0.1:PORT (one worker, no telemetry, no proxy), its
    output in ``log_path``: the URL once ``/health`` answers, the process group stopped
    afterwards (SIGTERM, then SIGKILL after 20 s). Fails with the log's tail if it exits."""
    mlflow = Path(sys.executable).parent / "mlflow"
    argv = [
        str(mlflow) if mlflow.is_file() else sys.executable,
        *([] if mlflow.is_file() else ["-m", "mlflow"]),
        "server", *args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = dict(
        env,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        argv,
        cwd=log_path.parent,
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
                tail = log_path.read_text(errors="replace")[-2000:]
                raise AssertionError(f"mlflow exited ({proc.returncode}): {tail}")
            with contextlib.suppress(requests.RequestException):
                s = requests.Session()
                s.trust_env = False
                if s.get(f"{url}{health_prefix}/health", timeout=3).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not come up within {timeout_s:g} s")
            time.sleep(0.5)
        yield url
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
