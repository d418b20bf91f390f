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
