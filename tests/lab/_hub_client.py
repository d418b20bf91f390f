"""Small real-HTTP helpers for the lab tests: log in to the hub, spawn a server, watch pids."""

from __future__ import annotations

import contextlib
import html
import re
import time

import psutil
import requests

from labcap.lab import LabEndpoints

_XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]*)"')


def direct_session() -> requests.Session:
    """A session that never goes through an HTTP(S)_PROXY from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def hub_login(hub_url: str, username: str, password: str) -> requests.Response:
    """Log in through the hub's form (GET for the _xsrf field, then POST); no redirects."""
    session = direct_session()
    page = session.get(f"{hub_url}/hub/login", timeout=10)
    page.raise_for_status()
    match = _XSRF_FIELD.search(page.text)
    assert match, "no _xsrf field on the hub login page"
    form = {"username": username, "password": password, "_xsrf": html.unescape(match.group(1))}
    return session.post(f"{hub_url}/hub/login", data=form, allow_redirects=False, timeout=30)


def spawn_and_wait_ready(endpoints: LabEndpoints, username: str, timeout_s: float = 120) -> float:
    """Create ``username``, start its server through the API; seconds until it is ready."""
    session = direct_session()
    session.headers["Authorization"] = f"token {endpoints.api_token}"
    api = f"{endpoints.hub_url}/hub/api"
    created = session.post(f"{api}/users/{username}", timeout=30)
    assert created.status_code in (201, 409), created.text
    started = time.monotonic()
    spawn = session.post(f"{api}/users/{username}/server", timeout=60)
    assert spawn.status_code in (201, 202), spawn.text
    while time.monotonic() - started < timeout_s:
        user = session.get(f"{api}/users/{username}", timeout=30).json()
        if user["servers"].get("", {}).get("ready"):
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"server of {username} not ready within {timeout_s} s")


def process_tree(pids: list[int]) -> set[psutil.Process]:
    """The processes ``pids`` and all their descendants, as they are now."""
    tree: set[psutil.Process] = set()
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            tree.add(root)
            tree.update(root.children(recursive=True))
    return tree


def still_running(procs: set[psutil.Process]) -> list[str]:
    """Descriptions of the processes that are alive (zombies count as gone)."""
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline()[:3])}")
    return alive


def wait_until_gone(procs: set[psutil.Process], timeout_s: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (alive := still_running(procs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive
