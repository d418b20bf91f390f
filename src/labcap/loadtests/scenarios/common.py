"""Pieces both lab journeys share: unique names, secret-free failure reasons, custom events.

Nothing here imports Locust, so it can be tested in a plain process; the
user classes pass their ``environment.events`` in.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

from labcap.redact import redact

# One random tag per process keeps names unique across Locust worker processes;
# the counter keeps them unique inside one.
_PROCESS_TAG = secrets.token_hex(3)
_counter = itertools.count(1)
_counter_lock = threading.Lock()
_pid_seen = os.getpid()


class StepFailed(Exception):
    """A journey step failed and has already been reported; skip the rest of the iteration."""


class AccountPool:
    """Pre-created hub accounts handed to simulated users, one user per account at a time.

    For hubs where users cannot appear at first login (NativeAuthenticator: sign-up and
    approval). A user takes a name when it starts and gives it back when it stops, so the
    pool must hold as many names as the largest step has users; ``take`` returns ``None``
    when every name is in use. One pool per process: Locust workers on several processes
    would need a file each.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._free = list(dict.fromkeys(names))
        self.size = len(self._free)
        self._lock = threading.Lock()

    def take(self) -> str | None:
        with self._lock:
            return self._free.pop(0) if self._free else None

    def give_back(self, name: str) -> None:
        with self._lock:
            if name not in self._free:
                self._free.append(name)


def read_accounts(path: str) -> tuple[str, ...]:
    """User names from a file, one a line (blank lines and ``#`` comments skipped)."""
    with open(path, encoding="utf-8") as f:
        lines = (ln.split("#", 1)[0].strip() for ln in f)
        return tuple(ln for ln in lines if ln)


def unique_name(prefix: str) -> str:
    """``prefix-<process tag>-<n>``: lowercase, unique across processes and users."""
    global _PROCESS_TAG, _counter, _pid_seen
    with _counter_lock:
        if os.getpid() != _pid_seen:  # forked after import: the tag must not be shared
            _PROCESS_TAG, _counter, _pid_seen = (
                secrets.token_hex(3),
                itertools.count(1),
                os.getpid(),
            )
        n = next(_counter)
    return f"{prefix}-{_PROCESS_TAG}-{n}".lower()


def hub_xsrf(cookies: Iterable[Any]) -> str:
    """The hub's own ``_xsrf`` cookie value (path /hub/) from a cookie jar that may hold
    several (a single-user server sets its own under /user/...); else any one; else ""."""
    by_path = {c.path: c.value for c in cookies if c.name == "_xsrf" and c.value}
    return by_path.get("/hub/") or next(iter(by_path.values()), "")


def describe(exc: BaseException, hidden: Iterable[str]) -> str:
    """``TypeName: message`` with secrets removed."""
    return redact(f"{type(exc).__name__}: {exc}", hidden)


def fire(
    events: Any,
    request_type: str,
    name: str,
    started: float,
    error: str | None = None,
    response_length: int = 0,
) -> float:
    """Report a custom (non-HTTP) step to Locust; ``started`` is a ``time.perf_counter()``."""
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    events.request.fire(
        request_type=request_type,
        name=name,
        response_time=elapsed_ms,
        response_length=response_length,
        exception=None if error is None else StepError(error),
        context={},
    )
    return elapsed_ms


class StepError(Exception):
    """The exception a failed custom step reports; its text is the failure reason."""
