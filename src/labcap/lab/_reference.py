"""The embedded reference lab: JupyterHub (+ proxy, single-user servers) and MLflow as local
processes on free loopback ports, health-checked and torn down with their whole process trees.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import jinja2
import psutil

from labcap.errors import LabcapError, MissingExtraError, RunFailedError
from labcap.lab._procs import (
    ServiceProcess,
    live_process,
    spawn_service,
    stop_process_trees,
)
from labcap.lab._state import read_state, remove_state, write_state

SERVICES = ("jupyterhub", "mlflow")
# The python modules each service needs; a missing one means the `lab` extra is absent.
_SERVICE_MODULES = {"jupyterhub": ("jupyterhub", "jupyter_server"), "mlflow": ("mlflow",)}
_HUB_SERVICE_NAME = "labcap"
_HUB_SERVICE_SCOPES = (
    "admin:users",
    "admin:servers",
    "tokens",
    "access:servers",
    "list:users",
    "read:users",
    "read:hub",
)
_CHP = "configurable-http-proxy"
_CHP_INSTALL_HINT = 'npm install --prefix "$VIRTUAL_ENV/lib/node" configurable-http-proxy@5'
_LOOPBACK = "127.0.0.1"
_NO_PROXY = "127.0.0.1,localhost"
_HEALTH_POLL_S = 0.25
_LOG_TAIL_LINES = 3

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabEndpoints:
    """Where a started lab answers, and the secrets to use it. Never log it whole."""

    hub_url: str  # public (proxy) URL; the hub API is under /hub/api
    mlflow_url: str  # "" when mlflow was not started
    hub_password: str = field(repr=False)  # shared login password for any username
    api_token: str = field(repr=False)  # hub service token with admin scopes

    def redacted(self) -> dict[str, str]:
        """The URLs, with both secrets replaced by ``***``."""
        return {
            "hub_url": self.hub_url,
            "mlflow_url": self.mlflow_url,
            "hub_password": "***",
            "api_token": "***",
        }


@dataclass(frozen=True)
class _Launch:
    """How to start one service and how to tell that it is up."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    log_path: Path
    health_url: str
    public_url: str


def find_chp(env: Mapping[str, str] | None = None, prefix: str | None = None) -> str:
    """Locate configurable-http-proxy: ``$LABCAP_CHP``, then the venv's npm prefix, then PATH."""
    env = os.environ if env is None else env
    prefix = sys.prefix if prefix is None else prefix
    explicit = env.get("LABCAP_CHP")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise LabcapError(
            f"LABCAP_CHP={explicit} is not an executable file; unset it or install the proxy: "
            f"{_CHP_INSTALL_HINT}"
        )
    in_venv = Path(prefix) / "lib" / "node" / "node_modules" / ".bin" / _CHP
    if in_venv.is_file() and os.access(in_venv, os.X_OK):
        return str(in_venv)
    on_path = shutil.which(_CHP, path=env.get("PATH", ""))
    if on_path:
        return on_path
    raise LabcapError(f"{_CHP} (JupyterHub's proxy) not found; install it: {_CHP_INSTALL_HINT}")


def install_sigterm_handler() -> Callable[..., Any] | int | None:
    """Turn the first SIGTERM into ``SystemExit(143)`` so ``with ReferenceLab(...)`` stops cleanly.

    Later SIGTERMs are ignored while that stop runs. Call from the main thread; returns the
    previous handler.
    """

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, on_sigterm)


class ReferenceLab:
    """Start the reference lab's services in ``workdir``; use as a context manager.

    Non-detached labs also die when this process dies (Linux: the services get SIGTERM when
    the *thread* that called :meth:`start` exits). Detached labs outlive this process; stop
    them with :func:`lab_down`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        services: tuple[str, ...] = SERVICES,
        progress: Progress | None = None,
        detach: bool = False,
        blocked_users: tuple[str, ...] = (),
    ) -> None:
        unknown = [s for s in services if s not in SERVICES]
        if unknown or not services:
            raise LabcapError(
                f"unknown lab service(s) {', '.join(unknown) or '(none given)'}; "
                f"valid: {', '.join(SERVICES)}"
            )
        self.workdir = Path(workdir).absolute()
        self.services = tuple(s for s in SERVICES if s in services)
        self.detach = detach
        # users the hub refuses to log in (a damaged deployment for `labcap verify`'s tests)
        self.blocked_users = tuple(blocked_users)
        self._progress: Progress = progress or (lambda _line: None)
        self._popens: dict[str, subprocess.Popen[bytes]] = {}
        self._records: list[ServiceProcess] = []
        self._ports: dict[str, int] = {}
        self._endpoints: LabEndpoints | None = None

    @property
    def endpoints(self) -> LabEndpoints | None:
        return self._endpoints

    def start(self, timeout_s: float = 120.0) -> LabEndpoints:
        """Start the services, wait until each is healthy, return the endpoints."""
        if self._records:
            raise LabcapError(f"this lab in {self.workdir} is already started")
        for service in self.services:
            for module in _SERVICE_MODULES[service]:
                if importlib.util.find_spec(module) is None:
                    raise MissingExtraError(module, "lab")
        self._prepare_workdir()
        self._ports = {}
        started = time.monotonic()
        try:
            launches = self._plan()
            self._progress(f"starting {', '.join(self.services)} in {self.workdir}")
            for launch in launches:
                self._spawn(launch)
            self._write_state()
            self._wait_healthy(launches, started, timeout_s)
        except BaseException:
            self.stop()
            raise
        if not self.detach:
            atexit.register(self.stop)
        assert self._endpoints is not None
        return self._endpoints

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every process of the lab (also single-user servers); safe to call twice."""
        if not self._records:
            return
        started = time.monotonic()
        extra = _proxy_process(self.workdir, self._ports.get("proxy_api"))
        survivors = stop_process_trees(self._records, timeout_s, extra=extra, reap=self._reap)
        atexit.unregister(self.stop)
        self._records, self._popens, self._endpoints = [], {}, None
        if survivors:
            pids = ", ".join(str(p.pid) for p in sorted(survivors, key=lambda p: p.pid))
            raise RunFailedError(f"lab processes survived SIGKILL: {pids}")
        remove_state(self.workdir)
        self._progress(f"lab stopped ({time.monotonic() - started:.1f} s)")

    def __enter__(self) -> LabEndpoints:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        status = lab_status(self.workdir)
        if status and status["running"]:
            raise LabcapError(
                f"a lab is already running in {self.workdir} (owner pid {status['owner_pid']}); "
                "stop it first with lab_down / `labcap lab down`"
            )
        remove_state(self.workdir)  # stale: its processes are gone
        (self.workdir / "logs").mkdir(exist_ok=True)

    def _plan(self) -> list[_Launch]:
        launches: list[_Launch] = []
        hub_url = mlflow_url = password = token = ""
        if "jupyterhub" in self.services:
            chp = find_chp()  # before any port is taken or any file written
            password, token = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
            hub = self._hub_launch(chp, password, token)
            launches.append(hub)
            hub_url = hub.public_url
        if "mlflow" in self.services:
            mlflow = self._mlflow_launch()
            launches.append(mlflow)
            mlflow_url = mlflow.public_url
        self._endpoints = LabEndpoints(hub_url, mlflow_url, password, token)
        return launches

    def _hub_launch(self, chp: str, password: str, token: str) -> _Launch:
        for port_name in ("proxy", "proxy_api", "hub"):
            self._ports[port_name] = _free_loopback_port()
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(
            _render_hub_config(self.workdir, chp, self._ports, self.blocked_users),
            encoding="utf-8",
        )
        env = _child_env(LABCAP_LAB_HUB_PASSWORD=password, LABCAP_LAB_API_TOKEN=token)
        url = f"http://{_LOOPBACK}:{self._ports['proxy']}"
        return _Launch(
            name="jupyterhub",
            argv=(sys.executable, "-m", "jupyterhub", "-f", str(config)),
            env=env,
            log_path=self.workdir / "logs" / "jupyterhub.log",
            health_url=f"{url}/hub/api",
            public_url=url,
        )

    def _mlflow_launch(self) -> _Launch:
        port = self._ports["mlflow"] = _free_loopback_port()
        # The default 4 workers are too heavy when the lab shares two cores with the load.
        argv = (
            *_console_script("mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.workdir / 'mlflow.db'}",
            "--default-artifact-root",
            str(self.workdir / "mlartifacts"),
            "--host",
            _LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
        )
        env = _child_env(
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            MLFLOW_DISABLE_TELEMETRY="true",
            DO_NOT_TRACK="true",
        )
        url = f"http://{_LOOPBACK}:{port}"
        return _Launch(
            name="mlflow",
            argv=argv,
            env=env,
            log_path=self.workdir / "logs" / "mlflow.log",
            health_url=f"{url}/health",
            public_url=url,
        )

    def _spawn(self, launch: _Launch) -> None:
        popen, record = spawn_service(
            launch.name,
            launch.argv,
            env=launch.env,
            cwd=self.workdir,
            log_path=launch.log_path,
            die_with_parent=not self.detach,
        )
        self._popens[launch.name] = popen
        self._records.append(record)

    def _write_state(self) -> None:
        assert self._endpoints is not None
        endpoints = self._endpoints
        write_state(
            self.workdir,
            {
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "owner_pid": os.getpid(),
                "detached": self.detach,
                "ports": self._ports,
                "endpoints": {
                    "hub_url": endpoints.hub_url,
                    "mlflow_url": endpoints.mlflow_url,
                    "hub_password": endpoints.hub_password,
                    "api_token": endpoints.api_token,
                },
                "services": [r.to_json() for r in self._records],
            },
        )

    def _wait_healthy(self, launches: Sequence[_Launch], started: float, timeout_s: float) -> None:
        pending = {launch.name: launch for launch in launches}
        deadline = started + timeout_s
        while pending:
            for name, launch in list(pending.items()):
                code = self._popens[name].poll()
                if code is not None:
                    raise RunFailedError(
                        self._failure(launch, f"exited with code {code} while starting")
                    )
                if _http_status(launch.health_url, timeout_s=2.0) == 200:
                    del pending[name]
                    elapsed_s = time.monotonic() - started
                    self._progress(f"{name} ready on {launch.public_url} ({elapsed_s:.1f} s)")
            if pending and time.monotonic() >= deadline:
                launch = next(iter(pending.values()))
                reason = f"did not become healthy within {timeout_s:g} s"
                raise RunFailedError(self._failure(launch, reason))
            if pending:
                time.sleep(_HEALTH_POLL_S)

    def _failure(self, launch: _Launch, reason: str) -> str:
        tail = _log_tail(launch.log_path)
        if self._endpoints is not None:
            for secret in (self._endpoints.hub_password, self._endpoints.api_token):
                if secret:
                    tail = tail.replace(secret, "***")
        return f"{launch.name} {reason}; log {launch.log_path} ends: {tail or '(empty)'}"

    def _reap(self) -> None:
        for popen in self._popens.values():
            popen.poll()


def lab_status(workdir: Path) -> dict[str, Any] | None:
    """The lab recorded in ``workdir`` (redacted endpoints, pids, alive or not), or None."""
    state = read_state(Path(workdir))
    if state is None:
        return None
    records = [ServiceProcess.from_json(s) for s in state["services"]]
    services = {
        r.name: {
            "pid": r.pid,
            "alive": live_process(r.pid, r.create_time) is not None,
            "log": str(r.log_path),
        }
        for r in records
    }
    return {
        "workdir": str(Path(workdir).absolute()),
        "started_at": state["started_at"],
        "owner_pid": state["owner_pid"],
        "detached": state["detached"],
        "running": any(s["alive"] for s in services.values()),
        "endpoints": LabEndpoints(**state["endpoints"]).redacted(),
        "services": services,
    }


def lab_down(workdir: Path, timeout_s: float = 15.0) -> bool:
    """Stop the lab recorded in ``workdir`` (e.g. a detached one); False if none was running."""
    workdir = Path(workdir)
    state = read_state(workdir)
    if state is None:
        return False
    records = [ServiceProcess.from_json(s) for s in state["services"]]
    extra = _proxy_process(workdir, state.get("ports", {}).get("proxy_api"))
    running = bool(extra) or any(live_process(r.pid, r.create_time) for r in records)
    survivors = stop_process_trees(records, timeout_s, extra=extra)
    if survivors:
        pids = ", ".join(str(p.pid) for p in sorted(survivors, key=lambda p: p.pid))
        raise RunFailedError(f"lab processes in {workdir} survived SIGKILL: {pids}")
    remove_state(workdir)
    return running


def _proxy_process(workdir: Path, proxy_api_port: int | None) -> list[psutil.Process]:
    """The hub's proxy from its pid file, so an orphaned proxy is stopped too."""
    if not proxy_api_port:
        return []
    try:
        pid = int((workdir / "jupyterhub-proxy.pid").read_text().strip())
        cmdline = psutil.Process(pid).cmdline()
    except (OSError, ValueError, psutil.Error):
        return []
    joined = " ".join(cmdline)
    if _CHP in joined and str(proxy_api_port) in cmdline:
        return [psutil.Process(pid)]
    return []


def _render_hub_config(
    workdir: Path, chp: str, ports: Mapping[str, int], blocked_users: Sequence[str] = ()
) -> str:
    template_text = (
        resources.files("labcap.lab").joinpath("jupyterhub_config.py.j2").read_text("utf-8")
    )
    env = jinja2.Environment(
        autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )
    env.filters["py"] = repr
    home_root = str(workdir / "home").replace("{", "{{").replace("}", "}}")
    singleuser_args = ["--allow-root"] if os.geteuid() == 0 else []
    return env.from_string(template_text).render(
        proxy_url=f"http://{_LOOPBACK}:{ports['proxy']}",
        hub_bind_url=f"http://{_LOOPBACK}:{ports['hub']}",
        proxy_api_url=f"http://{_LOOPBACK}:{ports['proxy_api']}",
        chp=chp,
        proxy_pid_file=str(workdir / "jupyterhub-proxy.pid"),
        db_url=f"sqlite:///{workdir / 'jupyterhub.sqlite'}",
        cookie_secret_file=str(workdir / "jupyterhub_cookie_secret"),
        hub_pid_file=str(workdir / "jupyterhub.pid"),
        service_name=_HUB_SERVICE_NAME,
        role_name=f"{_HUB_SERVICE_NAME}-driver",
        service_scopes=list(_HUB_SERVICE_SCOPES),
        singleuser_cmd=list(_console_script("jupyterhub-singleuser", "jupyterhub.singleuser")),
        singleuser_args=singleuser_args,
        home_dir_template=home_root + "/{username}",
        blocked_users=sorted(set(blocked_users)),
    )


def _console_script(name: str, module: str | None = None) -> tuple[str, ...]:
    """This interpreter's console script ``name``, else ``python -m module``."""
    script = Path(sys.executable).parent / name
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (sys.executable, "-m", module or name)


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    no_proxy = ",".join(v for v in (env.get("NO_PROXY"), _NO_PROXY) if v)
    env.update(NO_PROXY=no_proxy, no_proxy=no_proxy, PYTHONUNBUFFERED="1", **extra)
    return env


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return sock.getsockname()[1]


# Health checks go straight to loopback, never through an HTTP(S)_PROXY from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_status(url: str, timeout_s: float) -> int | None:
    try:
        with _DIRECT.open(url, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    with contextlib.suppress(OSError):
        with open(path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - 8192))
            text = log.read().decode("utf-8", "replace")
        kept = [line.strip()[:200] for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept)
    return ""
