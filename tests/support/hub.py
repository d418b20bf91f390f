"""A real JupyterHub of the test's own, on loopback, with the authenticator the test names.

Like the reference lab (``labcap.lab``) but smaller and configurable: configurable-http-proxy,
single-user servers on free loopback ports (they die with the hub), an admin service whose
token only the test knows, and a few pre-existing "real" users that labcap must leave alone.
Used by the API-journey tests: ``nullauthenticator`` (no login possible) and
NativeAuthenticator (sign-up and approval).
"""

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

import psutil
import pytest
import requests

from tests.support.lab import require_lab_stack

ADMIN_SCOPES = ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]

_CONFIG = """
import ctypes, os, signal, socket, sys
from jupyterhub.spawner import SimpleLocalProcessSpawner

c = get_config()  # noqa: F821
_prctl = ctypes.CDLL(None, use_errno=True).prctl


class LoopbackSpawner(SimpleLocalProcessSpawner):
    async def start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        return await super().start()

    def make_preexec_fn(self, name):
        home = super().make_preexec_fn(name)

        def preexec():
            _prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the hub
            home()

        return preexec


c.JupyterHub.bind_url = "http://127.0.0.1:{proxy}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {workdir!r} + "/proxy.pid"
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.cleanup_servers = True
c.JupyterHub.db_url = "sqlite:///" + {workdir!r} + "/hub.sqlite"
c.JupyterHub.cookie_secret_file = {workdir!r} + "/cookie_secret"
c.JupyterHub.pid_file = {workdir!r} + "/hub.pid"
c.JupyterHub.authenticator_class = {authenticator!r}
c.Authenticator.admin_users = {{"alice"}}
c.Authenticator.allow_all = True
c.NativeAuthenticator.open_signup = True  # signed-up users may log in at once
c.SharedPasswordAuthenticator.user_password = os.environ.pop("TEST_HUB_PASSWORD", "")
c.JupyterHub.services = [
    {{"name": "loadtester", "api_token": os.environ.pop("TEST_HUB_ADMIN_TOKEN")}},
    *{services!r},
]
c.JupyterHub.load_roles = [
    {{"name": "loadtester", "scopes": {scopes!r}, "services": ["loadtester"]}}
]
c.JupyterHub.spawner_class = LoopbackSpawner
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
c.Spawner.ip = "127.0.0.1"
c.LoopbackSpawner.home_dir_template = {workdir!r} + "/home/{{username}}"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60
"""


@dataclass
class LoopbackHub:
    url: str  # the proxy's public URL
    admin_token: str = field(repr=False)
    workdir: Path
    proc: subprocess.Popen[bytes]
    authenticator: str = ""

    def sign_up(self, name: str, password: str) -> None:
        """NativeAuthenticator's sign-up form (open sign-up: the user may log in at once)."""
        import html
        import re

        s = requests.Session()
        s.trust_env = False
        page = s.get(f"{self.url}/hub/signup", timeout=30)
        page.raise_for_status()
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]*)"', page.text)
        assert xsrf, "no _xsrf field on the sign-up page"
        form = {
            "username": name,
            "signup_password": password,
            "signup_password_confirmation": password,
            "_xsrf": html.unescape(xsrf[1]),
        }
        r = s.post(f"{self.url}/hub/signup", data=form, timeout=30)
        assert r.status_code == 200, r.text[-500:]

    def api(self) -> requests.Session:
        """An admin session to the hub API; never through a proxy from the environment."""
        s = requests.Session()
        s.trust_env = False
        s.headers["Authorization"] = f"token {self.admin_token}"
        return s

    def user_names(self) -> set[str]:
        with self.api() as s:
            r = s.get(f"{self.url}/hub/api/users", params={"limit": 1000}, timeout=30)
            r.raise_for_status()
            return {u["name"] for u in r.json()}

    def token_notes(self) -> dict[str, list[str]]:
        """Every user's tokens, by note."""
        with self.api() as s:
            out = {}
            for name in self.user_names():
                r = s.get(f"{self.url}/hub/api/users/{name}/tokens", timeout=30)
                r.raise_for_status()
                out[name] = [t.get("note") or "" for t in r.json()["api_tokens"]]
            return out

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "hub.log").read_text(errors="replace")[-3000:]
        return ""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


@contextlib.contextmanager
def running_hub(
    workdir: Path,
    authenticator: str,
    timeout_s: float = 90,
    services: list | None = None,
    password: str = "",
) -> Iterator[LoopbackHub]:
    """Start JupyterHub with ``authenticator`` in ``workdir``; stopped (with every single-user
    server) afterwards. ``services``: more hub services, e.g. ``{"name": "mlflow", "url":
    URL}`` to put an MLflow behind the hub's proxy at /services/mlflow/. ``password``: the
    shared password of ``authenticator="shared-password"``."""
    require_lab_stack()
    from labcap.lab._reference import find_chp

    module = authenticator.split(".")[0]
    if "." in authenticator and not _importable(module):  # else one of JupyterHub's own
        pytest.skip(f"{module} not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {"proxy": _port(), "hub": _port(), "proxy_api": _port()}
    singleuser = str(Path(sys.executable).parent / "jupyterhub-singleuser")
    (workdir / "jupyterhub_config.py").write_text(
        _CONFIG.format(
            **ports,
            chp=find_chp(),
            workdir=str(workdir),
            authenticator=authenticator,
            scopes=ADMIN_SCOPES,
            singleuser=singleuser,
            args=["--allow-root"] if os.geteuid() == 0 else [],
            services=list(services or []),
        )
    )
    token = secrets.token_urlsafe(32)
    env = dict(os.environ, TEST_HUB_ADMIN_TOKEN=token, NO_PROXY="127.0.0.1,localhost")
    env["TEST_HUB_PASSWORD"] = password
    env["no_proxy"] = env["NO_PROXY"]
    log = open(workdir / "hub.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(workdir / "jupyterhub_config.py")],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    hub = LoopbackHub(f"http://127.0.0.1:{ports['proxy']}", token, workdir, proc, authenticator)
    try:
        _wait_up(hub, timeout_s)
        yield hub
    finally:
        _stop(proc)
        log.close()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _wait_up(hub: LoopbackHub, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise AssertionError(f"the hub exited ({hub.proc.returncode}): {hub.log_tail()}")
        with contextlib.suppress(requests.RequestException), hub.api() as s:
            if s.get(f"{hub.url}/hub/api/user", timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"the hub did not come up within {timeout_s:g}s: {hub.log_tail()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the hub (it stops its servers and proxy), then kill whatever is left."""
    try:
        tree = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    except psutil.Error:
        tree = [proc.pid]
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid in tree:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
