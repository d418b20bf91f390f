"""Every TCP/UDP peer of a set of processes and their descendants (``ss -Htunap`` in this
network namespace), for the network rule: traffic goes only to loopback, or into a
namespace the tests made. Processes in another namespace (the test cluster's pods) are
checked by ``scripts/test-cluster check-net``; this covers what runs on the machine's own
network: labcap, its load engine, a Docker engine and its host-network containers.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

UNCONNECTED = {"*", "0.0.0.0", "::", ""}


def descendants(roots: Iterable[int]) -> set[int]:
    """``roots`` and every process below them (from /proc's parent pids)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    seen: set[int] = set()
    todo = [int(r) for r in roots]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children.get(pid, [])
    return seen


def peer_host(peer: str) -> str:
    """'127.0.0.1:5000' / '[::1]:80' / '*:*' / '[::ffff:127.0.0.1]:8' -> the address part."""
    host = peer.rsplit(":", 1)[0].strip("[]")
    return host.split("%", 1)[0]


def is_loopback(host: str) -> bool:
    if host in UNCONNECTED:
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def sockets_of(pids: set[int]) -> list[tuple[str, str, str]]:
    """(protocol, local, peer) of every TCP/UDP socket one of ``pids`` holds."""
    out = subprocess.run(["ss", "-Htunap"], capture_output=True, text=True, timeout=30).stdout
    found = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        parts = line.split()
        if owners & pids and len(parts) >= 6:
            found.append((parts[0], parts[4], parts[5]))
    return found


class PeerWatch:
    """Samples the peers of ``roots()`` (called each time: containers come and go) every
    ``every_s`` seconds until stopped; ``peers`` holds every distinct peer address seen and
    ``offenders`` every socket whose peer is not loopback (nor unconnected)."""

    def __init__(self, roots, every_s: float = 1.0) -> None:
        self._roots = roots
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.samples = 0
        self.sockets = 0
        self.peers: set[str] = set()
        self.offenders: list[tuple[str, str, str]] = []
        self.errors: list[str] = []

    def sample(self) -> None:
        try:
            found = sockets_of(descendants(self._roots()))
        except Exception as e:  # noqa: BLE001 (reported: an unobserved run proves nothing)
            self.errors.append(f"{type(e).__name__}: {e}")
            return
        self.samples += 1
        self.sockets += len(found)
        for sock in found:
            host = peer_host(sock[2])
            if host not in UNCONNECTED:
                self.peers.add(host)
            if not is_loopback(host):
                self.offenders.append(sock)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._every)

    def __enter__(self) -> PeerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.sample()  # one last look, after the work

    def summary(self) -> str:
        return (
            f"{self.samples} samples, {self.sockets} sockets, peers seen: "
            f"{sorted(self.peers) or 'none'}; not loopback: {self.offenders or 'none'}"
        )
