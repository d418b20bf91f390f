"""Per-endpoint, per-window HDR histograms fed by Locust's request event.

No Locust import here: the recorder takes plain arguments so it can be
tested on its own. Memory holds only the open window's histograms; closed
windows go to the journal (one JSON line per endpoint) and are dropped.
"""

from __future__ import annotations

import json
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from labcap.histograms import (
    HDR_MAX_US,
    HDR_MIN_US,
    histogram_summary,
    new_histogram,
    record_values,
)
from labcap.loadtests.lockstep import SendClock, sends_record
from labcap.model import LoadPlan

REASON_MAX_CHARS = 200
USER_GAP_S = 0.1


def preload() -> None:
    """Before any user runs: import what the first window's close needs (numpy's import
    took ~40 ms inside the first flush, stalling every user's request in flight), then
    freeze the heap. The ~90,000 objects of Locust, numpy and labcap itself would otherwise
    be traversed by every full garbage collection, ~50 ms each on this machine, with every
    user stalled; frozen, they are left out (gc.freeze, as Locust does before forking)."""
    import gc

    import numpy  # noqa: F401

    gc.collect()
    gc.freeze()


def step_record(index: int, users: int) -> dict[str, Any]:
    """The journal record of when a step really began (wall clock): collector samples are
    placed on steps by it, since a probe the search ends early moves every later step
    forward of the plan."""
    return {"kind": "step", "step_index": index, "users": users, "t_unix": time.time()}


class _Series:
    __slots__ = ("hist", "requests", "failures", "values")

    def __init__(self) -> None:
        self.hist = new_histogram()
        self.requests = 0
        self.failures = 0
        self.values = array("q")  # µs, recorded into hist in one go when the window closes


@dataclass
class _PendingSends:
    window: Any
    clock: SendClock
    end_s: float
    users: int


class WindowRecorder:
    """Buckets request outcomes into the plan's windows and journals each closed window.

    Latency histograms hold successful requests only; failures are counted
    per endpoint with their reason, so a flood of fast errors cannot make a
    step look quick.
    """

    def __init__(
        self,
        plan: LoadPlan,
        journal: IO[str],
        *,
        active_users: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
        on_step_done: Callable[[int, dict[str, Any]], None] | None = None,
        sync: Callable[[int], Any] = os.fsync,
        worker: str = "local",
        emit_bins: bool = False,
    ) -> None:
        self.plan = plan
        # who generated the load (Locust worker name); its CPU is journalled per window
        self.worker = worker
        # a worker sends its send-instant bins, so the master judges lock-step on the union
        self.emit_bins = emit_bins
        self.journal = journal
        self.active_users = active_users
        self.clock = clock
        self.on_step_done = on_step_done
        # fsync blocks; the engine hands in one that runs off the event loop
        self.sync = sync
        self.t0: float | None = None
        self.window_pos = 0
        self.series: dict[tuple[str, str], _Series] = {}
        self.reasons: Counter[tuple[str, str, str]] = Counter()
        self.late_requests = 0
        self._step_hist = new_histogram()
        self._step_counts = [0, 0]
        self._sends: SendClock | None = None
        # the last closed window's send clock, kept open one window longer: a request sent
        # in it and answered in the next counts where it was sent (its record follows then)
        self._pending: _PendingSends | None = None
        # per user (Locust's request context "labcap_user"): its last counted send
        self._user_sent: dict[Any, float] = {}
        # the adaptive search decides a step's users while it runs
        self.step_users: dict[int, int] = {}
        # steady windows of the open step, per (endpoint, method): [hist, requests, failures]
        self._step_series: dict[tuple[str, str], list[Any]] = {}
        # called with (window, its window records) after each window is journalled
        self.on_window: Callable[[Any, list[dict[str, Any]]], None] | None = None

    def _send_clock(self, sent_s: float) -> SendClock | None:
        """The clock of the window ``sent_s`` lies in: the open one or the one before."""
        w = self.plan.windows[self.window_pos]
        if sent_s >= w.start_s:
            if self._sends is None:
                self._sends = SendClock(w.start_s, w.end_s)
            return self._sends
        pending = self._pending
        return pending.clock if pending and sent_s >= pending.clock.start_s else None

    def _write_pending(self) -> None:
        """The last closed window's sends record, now that no more sends can join it."""
        p, self._pending = self._pending, None
        if p is None:
            return
        record = sends_record(p.window, p.clock, p.end_s, p.users)
        if self.emit_bins:
            record["bins"] = p.clock.sparse()
        self._write(record)

    def start(self) -> None:
        self.t0 = self.clock()
        # Wall-clock start, so collectors' timestamps can be placed on the plan's steps.
        self._write({"kind": "start", "t0_unix": time.time()})

    def mark_step(self, index: int, users: int) -> None:
        self._write(step_record(index, users))

    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else self.clock() - self.t0

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """Locust ``request`` event listener (``response_time`` in ms, float; ``start_time``,
        when the client passes it, the wall-clock instant the request left)."""
        if self.t0 is None:
            return
        self.advance()
        if self.window_pos >= len(self.plan.windows):
            self.late_requests += 1
            return
        s = self.series.get((name, request_type))
        if s is None:
            s = self.series[(name, request_type)] = _Series()
        s.requests += 1
        if response_time is not None:
            # when the request left: the lock-step check looks at send instants, one per
            # user per USER_GAP_S (a user's own back-to-back journey is not a burst). From
            # start_time where given: WireHttpUser's response_time ends at the kernel's
            # receipt, before the user woke, so the time since the send can be longer
            ago = time.time() - start_time if start_time else response_time / 1000.0
            sent = self.elapsed() - ago
            user = context.get("labcap_user") if context else None
            last = self._user_sent.get(user) if user is not None else None
            clock = self._send_clock(sent)
            if clock is not None and (last is None or sent - last >= USER_GAP_S):
                clock.add(sent)
                if user is not None:
                    self._user_sent[user] = sent
        steady = not self.plan.windows[self.window_pos].settling
        self._step_counts[0] += steady
        if exception is not None:
            s.failures += 1
            self._step_counts[1] += steady
            self.reasons[(name, request_type, _reason(exception))] += 1
            return
        us = min(max(int(round((response_time or 0.0) * 1000)), HDR_MIN_US), HDR_MAX_US)
        s.values.append(us)

    def advance(self) -> None:
        """Close every window whose end has passed."""
        t = self.elapsed()
        windows = self.plan.windows
        while self.window_pos < len(windows) and t >= windows[self.window_pos].end_s:
            self._flush(self.window_pos)
            self.window_pos += 1

    @property
    def finished(self) -> bool:
        return self.window_pos >= len(self.plan.windows)

    def drop_rest(self) -> None:
        """End the plan here: the open window's few records are dropped, nothing follows."""
        self.series.clear()
        self.reasons.clear()
        self._sends = None
        self._write_pending()
        self.window_pos = len(self.plan.windows)

    def close(self, status: str, reason: str = "") -> None:
        """Flush the open window (cut short when interrupted) and journal the end."""
        self.advance()
        if self.window_pos < len(self.plan.windows):
            self._flush(self.window_pos, cut_at=self.elapsed())
            self.window_pos = len(self.plan.windows)
        self._write(
            {
                "kind": "end",
                "status": status,
                "reason": reason,
                "late_requests": self.late_requests,
                "elapsed_s": round(self.elapsed(), 3),
            }
        )

    def _flush(self, pos: int, cut_at: float | None = None) -> None:
        w = self.plan.windows[pos]
        step = self.plan.steps[w.step_index]
        end_s = w.end_s if cut_at is None else min(w.end_s, max(cut_at, w.start_s))
        users = self.active_users()
        for key, s in self.series.items():
            record_values(s.hist, s.values)
            if not w.settling:
                self._step_hist.add(s.hist)
                acc = self._step_series.setdefault(key, [new_histogram(), 0, 0])
                acc[0].add(s.hist)
                acc[1] += s.requests
                acc[2] += s.failures
            s.values = array("q")
        written: list[dict[str, Any]] = []
        for (name, method), s in sorted(self.series.items()):
            summary = histogram_summary(s.hist)
            written.append({"endpoint": name, "method": method, "requests": s.requests,
                            "failures": s.failures, **summary})  # fmt: skip
            self._write(
                {
                    "kind": "window",
                    "window_index": w.index,
                    "step_index": w.step_index,
                    "start_s": w.start_s,
                    "end_s": round(end_s, 6),
                    "settling": w.settling,
                    "target_users": self.step_users.get(step.index, step.users),
                    "active_users": users,
                    "endpoint": name,
                    "method": method,
                    "requests": s.requests,
                    "failures": s.failures,
                    **summary,
                    "hdr": s.hist.encode().decode("ascii") if s.hist.get_total_count() else "",
                }
            )
        for (name, method, reason), count in sorted(self.reasons.items()):
            self._write(
                {
                    "kind": "failure",
                    "window_index": w.index,
                    "step_index": w.step_index,
                    "endpoint": name,
                    "method": method,
                    "reason": reason,
                    "count": count,
                }
            )
        self._write_pending()
        self._pending = _PendingSends(w, self._sends or SendClock(w.start_s, w.end_s), end_s, users)
        self._sends = None
        if pos + 1 >= len(self.plan.windows) or cut_at is not None:
            self._write_pending()  # nothing follows it
        self._write(
            {
                "kind": "generator",
                "window_index": w.index,
                "worker": self.worker,
                "cpu_s": round(process_cpu_s(), 4),
                "wall_s": round(time.monotonic(), 4),
            }
        )
        self.journal.flush()
        self.sync(self.journal.fileno())
        self.series.clear()
        self.reasons.clear()
        if self.on_window is not None:
            self.on_window(w, written)
        last_of_step = pos + 1 >= len(self.plan.windows) or (
            self.plan.windows[pos + 1].step_index != w.step_index
        )
        if last_of_step or cut_at is not None:
            if self.on_step_done:
                self.on_step_done(
                    w.step_index,
                    step_summary(self._step_hist, self._step_counts, users, self._step_series),
                )
            self._step_hist = new_histogram()
            self._step_counts = [0, 0]
            self._step_series = {}

    def _write(self, record: dict[str, Any]) -> None:
        self.journal.write(json.dumps(record, separators=(",", ":")) + "\n")


def step_summary(
    hist: Any, counts: list[int], users: int, series: dict[Any, Any]
) -> dict[str, Any]:
    """What ``on_step_done`` gets when a step's last window closes (the recorder's and the
    master's alike): its requests, failures and p95 over the steady windows, its users, and
    its per-endpoint series (the adaptive search judges a probe by them)."""
    summary = histogram_summary(hist)
    return {
        "requests": counts[0],
        "failures": counts[1],
        "p95_ms": None if summary["p95_us"] is None else summary["p95_us"] / 1000,
        "users": users,
        "series": series,
    }


def process_cpu_s() -> float:
    """This process's CPU time (user + system), seconds."""
    t = os.times()
    return t.user + t.system


def _reason(exc: BaseException) -> str:
    """A short, stable failure reason: type and first line, no secrets from URLs' queries."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:REASON_MAX_CHARS]
