"""Checks made before a run writes anything: the target answers, the locustfile loads.

A run that cannot measure anything must fail at once with one clear line and
leave no run directory behind, instead of writing a directory full of
refused connections or an import error (issue 9: bad input writes nothing).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from labcap.errors import LabcapError
from labcap.store import LOCK, MANIFEST

CONNECT_TIMEOUT_S = 5.0
LOAD_TIMEOUT_S = 90.0

# The child imports Locust (gevent monkey-patching): never in labcap's own process.
_CHILD = """
import sys
try:
    from locust.util.load_locustfile import load_locustfile
    users, _shapes = load_locustfile(sys.argv[1])
except BaseException as e:
    print(f"{type(e).__name__}: {e}".replace("\\n", " "))
    sys.exit(3)
if not users:
    print(f"{sys.argv[1]} defines no Locust User class")
    sys.exit(3)
if _shapes:
    print(", ".join(type(s).__name__ for s in _shapes))
    sys.exit(4)
"""

SHAPE_REFUSED = (
    "scenario {path} defines a LoadTestShape ({names}): labcap does not run it, because "
    "labcap sets the load itself (--users N,N,... held --step-duration each, or --users "
    "auto); remove the shape class or write its stages as --users"
)


def check_url(url: str, *, what: str = "--host") -> tuple[str, int]:
    """(host, port) of an http(s) URL, or a LabcapError saying what is wrong with it."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError as e:
        raise LabcapError(f"{what} {url!r} is not a URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise LabcapError(f"{what} {url!r}: use an http:// or https:// URL")
    if not parts.hostname:
        raise LabcapError(f"{what} {url!r} names no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _proxied(url: str) -> bool:
    scheme, host = urlsplit(url).scheme, urlsplit(url).hostname or ""
    return bool(urllib.request.getproxies().get(scheme)) and not urllib.request.proxy_bypass(host)


def check_reachable(hosts: Mapping[str, str], *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Every target URL parses and accepts a TCP connection (unless a proxy carries it)."""
    seen: set[tuple[str, int]] = set()
    for role, url in sorted(hosts.items()):
        what = "--mlflow-url" if role == "mlflow" and url != hosts.get("default") else "--host"
        addr = check_url(url, what=what)
        if addr in seen or _proxied(url):
            continue
        seen.add(addr)
        try:
            with socket.create_connection(addr, timeout=timeout_s):
                pass
        except OSError as e:
            why = e.strerror or type(e).__name__
            raise LabcapError(
                f"{what} {url}: target unreachable ({why} at {addr[0]}:{addr[1]}); is it running?"
            ) from None


def check_locustfile(path: str | Path, *, timeout_s: float = LOAD_TIMEOUT_S) -> None:
    """Import a user's locustfile in a child process; a broken one is a LabcapError."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise LabcapError(
            f"scenario {path}: importing it took over {timeout_s:g}s; does it block at import?"
        ) from None
    if proc.returncode == 4:  # never silently ignored: one line saying it is not run
        raise LabcapError(SHAPE_REFUSED.format(path=path, names=proc.stdout.strip()))
    if proc.returncode != 0:
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        lines = lines or [ln for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        raise LabcapError(f"scenario failed to load: {lines[-1].strip()} (in {path})")


def check_out_dir(out: Path, *, overwrite: bool) -> None:
    """The run directory can be written: not a file, not another run's, not being written."""
    import fcntl
    import os

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LabcapError(f"--out {out} is a file, not a directory")
    if (out / LOCK).exists():
        fd = os.open(out / LOCK, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabcapError(f"{out}: another labcap run is writing this directory") from None
        finally:
            os.close(fd)  # closing drops the probe's lock
    if (out / MANIFEST).exists() and not overwrite:
        raise LabcapError(f"{out} already holds a run: choose another --out or pass --overwrite")
