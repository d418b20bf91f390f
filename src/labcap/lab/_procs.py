"""Service processes: start each in its own session, stop whole process trees."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.05
# psutil's create_time is derived from boot time and clock ticks; allow for rounding.
_CREATE_TIME_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ServiceProcess:
    """One started service: enough to find and stop it again from another process."""

    name: str
    pid: int
    pgid: int
    create_time: float
    log_path: Path

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "pid": self.pid,
            "pgid": self.pgid,
            "create_time": self.create_time,
            "log_path": str(self.log_path),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ServiceProcess:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),  # type: ignore[arg-type]
            pgid=int(data["pgid"]),  # type: ignore[arg-type]
            create_time=float(data["create_time"]),  # type: ignore[arg-type]
            log_path=Path(str(data["log_path"])),
        )


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this thread's process dies.

    Linux only (prctl PR_SET_PDEATHSIG); elsewhere returns None. The signal fires when the
    *thread* that forked exits, so start non-detached labs from a long-lived thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn_service(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    die_with_parent: bool,
) -> tuple[subprocess.Popen[bytes], ServiceProcess]:
    """Start ``argv`` in a new session with stdout+stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            preexec_fn=die_with_parent_preexec() if die_with_parent else None,
        )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = 0.0
    record = ServiceProcess(name, popen.pid, popen.pid, create_time, log_path)
    return popen, record


def live_process(pid: int, create_time: float) -> psutil.Process | None:
    """The process ``pid`` if it is still the one started at ``create_time`` and not a zombie."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > _CREATE_TIME_TOLERANCE_S:
            return None  # the pid was reused by an unrelated process
        return proc if _is_alive(proc) else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def process_tree(roots: Iterable[psutil.Process]) -> set[psutil.Process]:
    """The roots and all their live descendants (also those in other sessions)."""
    tree: set[psutil.Process] = set()
    for root in roots:
        if not _is_alive(root):
            continue
        tree.add(root)
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            tree.update(child for child in root.children(recursive=True) if _is_alive(child))
    return tree


def _signal_group(proc: psutil.Process, pgid: int, sig: signal.Signals) -> None:
    """Signal ``pgid`` only while ``proc`` still leads it, so a reused id is never hit."""
    try:
        if _is_alive(proc) and os.getpgid(proc.pid) == pgid:
            os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
        pass


def _wait_gone(
    procs: set[psutil.Process], deadline: float, reap: Callable[[], None]
) -> set[psutil.Process]:
    alive = set(procs)
    while True:
        reap()
        alive = {p for p in alive if _is_alive(p)}
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(_POLL_S)


def stop_process_trees(
    services: Sequence[ServiceProcess],
    timeout_s: float,
    *,
    extra: Iterable[psutil.Process] = (),
    reap: Callable[[], None] = lambda: None,
) -> set[psutil.Process]:
    """SIGTERM each service's group, wait, then SIGKILL whatever of the trees remains.

    Descendants are collected before signalling, so single-user servers that the hub
    started in their own sessions are covered too. Returns the processes that survived.
    """
    start = time.monotonic()
    roots = {s: p for s in services if (p := live_process(s.pid, s.create_time))}
    tree = process_tree(roots.values())
    orphans = process_tree(extra) - tree
    tree |= orphans
    if not tree:
        reap()
        return set()
    # Only the group leaders get SIGTERM: the hub then stops its servers and proxy itself.
    for service, proc in roots.items():
        _signal_group(proc, service.pgid, signal.SIGTERM)
    for proc in orphans:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.terminate()
    term_deadline = start + 0.8 * timeout_s
    # Re-collect: a root may have started children between the first walk and SIGTERM.
    tree |= process_tree(roots.values())
    alive = _wait_gone(tree, term_deadline, reap)
    if not alive:
        return set()
    for service, proc in roots.items():
        _signal_group(proc, service.pgid, signal.SIGKILL)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    return _wait_gone(alive, max(start + timeout_s, time.monotonic() + 1.0), reap)
