"""A generated Compose profile, built and started for real on a private Docker engine.

The end-to-end test (``test_compose_e2e.py``) uses one ``ComposeLab``: the profile's
images come from ``scripts/lab-images`` (no registry), Debian's docker-compose 1.29 starts
it with the profile's files plus ONE override, ``test-override.yml``, written here:

* every service on the engine's host network (the engine has no bridge), listening on
  127.0.0.1 only, on free ports: ports and bind addresses are the only things it changes
  (commands get loopback/port flags, healthchecks the new ports, PGPORT the database port);
* ``extra_hosts`` maps the service names to 127.0.0.1, so the profile's URLs still work;
* the hub gets ``DOCKER_NETWORK_NAME=host`` (the profile's host-network branch: each user
  container listens on its own free 127.0.0.1 port) and the private engine's socket.

Everything else (jupyterhub_config.py, .env, volumes, healthchecks' commands, images) is
the profile as a user gets it. No traffic leaves loopback.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("postgres", "proxy", "hub", "mlflow")
_XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]*)"')
# Debian's docker-compose 1.29, run through one shim: its docker-py refuses a service that
# has both host networking and published ports ("host" network_mode is incompatible with
# port_bindings), which the override cannot remove from the profile (Compose v1 merges
# ports). The engine itself, `docker run -p ... --network host` and Compose v2 accept it and
# discard the published ports; the shim does the same on the client side, nothing else.
COMPOSE_SHIM = """
import sys
import docker.types.containers as containers
_init = containers.HostConfig.__init__
def _host_config(self, version, *args, **kw):
    if kw.get("network_mode") == "host":
        kw["port_bindings"] = None
    _init(self, version, *args, **kw)
containers.HostConfig.__init__ = _host_config
from compose.cli.main import main
sys.argv[0] = "docker-compose"
sys.exit(main())
"""


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (bound together, so never the same one)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class Ports:
    public: int  # the proxy's public port (users' URL)
    proxy_api: int
    hub: int
    mlflow: int
    postgres: int


def _replace_flag(command: list[str], flag: str, value: str) -> list[str]:
    out = [f"{flag}={value}" if c.startswith(f"{flag}=") else c for c in command]
    if out == command:
        raise AssertionError(f"the profile's command has no {flag}=: {command}")
    return out


def host_network_override(compose: dict[str, Any], ports: Ports, docker_sock: str) -> dict:
    """test-override.yml: the profile's services on the host network, loopback only."""
    svc = compose["services"]
    hosts = [f"{name}:127.0.0.1" for name in SERVICES]
    common = {"network_mode": "host", "extra_hosts": hosts}
    proxy_cmd = list(svc["proxy"]["command"])
    for flag, value in (
        ("--ip", "127.0.0.1"),
        ("--port", str(ports.public)),
        ("--api-ip", "127.0.0.1"),
        ("--api-port", str(ports.proxy_api)),
        ("--default-target", f"http://hub:{ports.hub}"),
        ("--error-target", f"http://hub:{ports.hub}/hub/error"),
    ):
        proxy_cmd = _replace_flag(proxy_cmd, flag, value)
    mlflow_cmd = _replace_flag(list(svc["mlflow"]["command"]), "--host", "127.0.0.1")
    mlflow_cmd = _replace_flag(mlflow_cmd, "--port", str(ports.mlflow))
    py_get = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{}{}', timeout=4)"
    pg_env = {"PGPORT": str(ports.postgres)}
    override: dict[str, Any] = {"version": compose["version"]} if "version" in compose else {}
    return {
        **override,
        "services": {
            "postgres": {
                **common,
                "environment": pg_env,
                "command": [*svc["postgres"]["command"], "-c", "listen_addresses=127.0.0.1"],
            },
            "proxy": {
                **common,
                "command": proxy_cmd,
                "healthcheck": {
                    "test": [
                        "CMD",
                        "node",
                        "-e",
                        f"require('net').connect({ports.proxy_api}, '127.0.0.1')"
                        ".on('connect', () => process.exit(0))"
                        ".on('error', () => process.exit(1))",
                    ]
                },
            },
            "hub": {
                **common,
                "command": [
                    *svc["hub"]["command"],
                    "--JupyterHub.hub_ip=127.0.0.1",
                    f"--JupyterHub.hub_port={ports.hub}",
                    f"--ConfigurableHTTPProxy.api_url=http://proxy:{ports.proxy_api}",
                ],
                "environment": {
                    **pg_env,
                    "DOCKER_NETWORK_NAME": "host",
                    "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}",
                },
                "volumes": [f"{docker_sock}:/var/run/docker.sock"],
                "healthcheck": {
                    "test": ["CMD", "python3", "-c", py_get.format(ports.hub, "/hub/health")]
                },
            },
            "mlflow": {
                **common,
                "command": mlflow_cmd,
                "environment": pg_env,
                "healthcheck": {
                    "test": ["CMD", "python3", "-c", py_get.format(ports.mlflow, "/health")]
                },
            },
        },
    }


class ComposeLab:
    """One started profile: compose commands, URLs, and hub sessions for its users."""

    def __init__(self, profile: Path, project: str, docker_host: str) -> None:
        self.profile = profile
        self.project = project
        self.docker_host = docker_host
        self.env = {**os.environ, "DOCKER_HOST": docker_host}
        p = free_ports(5)
        self.ports = Ports(*p)
        self.hub_url = f"http://127.0.0.1:{self.ports.public}"
        self.mlflow_url = f"http://127.0.0.1:{self.ports.mlflow}"
        self.compose_files = ("docker-compose.yml", "test-override.yml")

    # -- compose ----------------------------------------------------------------------

    def write_override(self) -> Path:
        compose = yaml.safe_load((self.profile / "docker-compose.yml").read_text())
        sock = self.docker_host.removeprefix("unix://")
        override = host_network_override(compose, self.ports, sock)
        path = self.profile / "test-override.yml"
        path.write_text(
            "# The end-to-end test's one override: host network, 127.0.0.1 ports "
            "(tests/deploy_profiles/compose_lab.py)\n" + yaml.safe_dump(override, sort_keys=False)
        )
        return path

    def compose_argv(self) -> list[str]:
        argv = ["/usr/bin/python3", "-c", COMPOSE_SHIM, "-p", self.project]
        for f in self.compose_files:
            argv += ["-f", f]
        return argv

    def compose(self, *args: str, timeout_s: float = 180, check: bool = True, **kw: Any):
        r = subprocess.run(
            [*self.compose_argv(), *args],
            cwd=self.profile,
            env=self.env,
            timeout=timeout_s,
            check=False,
            capture_output=True,
            text=True,
            **kw,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]}"
            )
        return r

    def docker(self, *args: str, timeout_s: float = 120, check: bool = True, **kw: Any):
        return subprocess.run(
            ["docker", *args],
            env=self.env,
            timeout=timeout_s,
            check=check,
            capture_output=True,
            text=True,
            **kw,
        )

    def up(self, timeout_s: float = 240) -> None:
        self.compose("up", "-d", timeout_s=timeout_s)
        self.wait_healthy(timeout_s)

    def container_id(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def wait_healthy(self, timeout_s: float = 240, services: tuple[str, ...] = SERVICES) -> None:
        deadline = time.monotonic() + timeout_s
        state: dict[str, str] = {}
        while time.monotonic() < deadline:
            for s in services:
                cid = self.container_id(s)
                r = (
                    self.docker(
                        "inspect",
                        "-f",
                        "{{.State.Status}}/{{.State.Health.Status}}",
                        cid,
                        check=False,
                    )
                    if cid
                    else None
                )
                state[s] = r.stdout.strip() if r is not None and r.returncode == 0 else "absent"
            if all(v == "running/healthy" for v in state.values()):
                return
            time.sleep(1)
        logs = self.compose("logs", "--tail=30", timeout_s=60, check=False).stdout
        raise AssertionError(f"services not healthy after {timeout_s:g} s: {state}\n{logs}")

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", timeout_s=180, check=False)

    def user_containers(self) -> list[str]:
        out = self.docker("ps", "-aq", "--filter", "label=ailab.role=user-server").stdout
        return out.split()

    def remove_user_containers_and_volumes(self) -> None:
        named = self.docker("ps", "-aq", "--filter", "name=^jupyter-").stdout.split()
        ids = sorted({*self.user_containers(), *named})
        if ids:
            self.docker("rm", "-f", *ids, check=False)
        vols = self.docker("volume", "ls", "-q", "--filter", "name=jupyterhub-user-").stdout
        if vols.split():
            self.docker("volume", "rm", "-f", *vols.split(), check=False)

    # -- hub users, as a browser does it ------------------------------------------------

    def _form(self, session: requests.Session, path: str) -> str:
        r = session.get(f"{self.hub_url}{path}", timeout=30)
        r.raise_for_status()
        m = _XSRF_FIELD.search(r.text)
        assert m, f"no _xsrf field on {path}"
        return html.unescape(m[1])

    def sign_up(self, username: str, password: str) -> str:
        """NativeAuthenticator's sign-up form; returns the page's message."""
        s = requests.Session()
        xsrf = self._form(s, "/hub/signup")
        r = s.post(
            f"{self.hub_url}/hub/signup",
            data={
                "username": username,
                "signup_password": password,
                "signup_password_confirmation": password,
                "_xsrf": xsrf,
            },
            timeout=30,
        )
        r.raise_for_status()
        return r.text

    def login(self, username: str, password: str) -> requests.Session | None:
        """A logged-in session, or None when the hub refuses the login."""
        s = requests.Session()
        xsrf = self._form(s, "/hub/login")
        r = s.post(
            f"{self.hub_url}/hub/login",
            data={"username": username, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )
        if r.status_code != 302:
            return None
        # where the browser lands next; it also hands out the session's _xsrf token (a token
        # request with the pre-login one got "XSRF cookie does not match" on JupyterHub 5.2)
        s.get(f"{self.hub_url}/hub/home", timeout=30).raise_for_status()
        return s

    def token(self, session: requests.Session, username: str) -> str:
        # the hub's own _xsrf cookie (path /hub/), as labcap's jupyterhub scenario picks it
        values = {c.path: c.value for c in session.cookies if c.name == "_xsrf" and c.value}
        xsrf = values.get("/hub/") or next(iter(values.values()), "")
        r = session.post(
            f"{self.hub_url}/hub/api/users/{username}/tokens",
            json={"note": "e2e test"},
            headers={"X-XSRFToken": xsrf},
            timeout=30,
        )
        assert r.status_code == 201, f"token request: HTTP {r.status_code}"
        return r.json()["token"]

    def authorize(self, admin: requests.Session, username: str) -> None:
        """The admin's click on /hub/authorize: NativeAuthenticator's toggle link."""
        r = admin.get(f"{self.hub_url}/hub/authorize/{username}", timeout=30)
        r.raise_for_status()

    def api(self, token: str, method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.hub_url}{path}",
            headers={"Authorization": f"token {token}"},
            timeout=30,
            **kw,
        )

    def server(self, token: str, username: str) -> dict[str, Any] | None:
        r = self.api(token, "GET", f"/hub/api/users/{username}")
        r.raise_for_status()
        return r.json().get("servers", {}).get("")

    def wait_ready(self, token: str, username: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = self.server(token, username)
            if last and last.get("ready"):
                return last
            time.sleep(0.5)
        logs = self.compose("logs", "--tail=40", "hub", timeout_s=60, check=False).stdout
        raise AssertionError(f"{username}'s server not ready after {timeout_s:g} s: {last}\n{logs}")

    def wait_gone(self, token: str, username: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server(token, username) is None:
                return
            time.sleep(0.5)
        raise AssertionError(f"{username}'s server still there after {timeout_s:g} s")


def missing_tools() -> list[str]:
    return [
        t
        for t in ("docker", "dockerd", "docker-compose", "mmdebstrap", "npm")
        if not shutil.which(t)
    ]


def require_compose_stack() -> None:
    """Skip where a Compose lab cannot run here (not root, no Docker); fail where the
    bootstrap's tools are missing (the lab then could run but the set-up was not done)."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root: the Compose lab runs on a private Docker engine (dockerd.sh)")
    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("no Docker engine installed (apt-get install docker.io)")
    missing = missing_tools()
    assert not missing, f"missing {missing}: run scripts/bootstrap.sh"
