"""Live progress of a run on stderr, the way pip and rich show it, and the early stop of a
run against a clearly broken target.

``Console`` owns stderr while a run lasts: on a terminal one status line is rewritten in
place about once a second (elapsed and remaining time, active users, req/s, errors and the
step's p95 so far), and every other progress line is printed above it; where stderr is not a
terminal the status comes as a plain line every ``PLAIN_EVERY_S``; with ``quiet`` there is no
status line at all, only the run's own lines. ``verbose`` adds a line per endpoint and window.

``LiveMonitor`` is the run's ``watch`` hook (``RunRequest.watch``: called about twice a second
with the journal's path). It reads the journal's new records, keeps the figures the status
line shows, and answers a reason to stop when the target is clearly broken: a whole step with
more than ``BROKEN_ERROR_PCT`` of its requests failed, and every step before it too (errors
that come with load are a capacity limit, not a broken target, and are measured to the end).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

PLAIN_EVERY_S = 10.0
LIVE_EVERY_S = 1.0
BROKEN_ERROR_PCT = 50.0
BROKEN_MIN_REQUESTS = 10  # fewer than this in a step: too little to call the target broken


class Console:
    """stderr during a run: progress lines, and (on a terminal) one live status line."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        verbose: bool = False,
        live: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet, self.verbose = quiet, verbose
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = (is_tty and not quiet) if live is None else live
        self._shown = ""
        self._lock = threading.Lock()

    def line(self, msg: str) -> None:
        """A progress line (``labcap: msg``), printed above the live status line."""
        with self._lock:
            self._clear()
            self.stream.write(f"labcap: {msg}\n")
            self._draw(self._shown)
            self.stream.flush()

    def status(self, text: str) -> None:
        """The run's status now: rewritten in place on a terminal, else a plain line."""
        if self.quiet:
            return
        with self._lock:
            if self.live:
                self._clear()
                self._draw(text)
                self._shown = text
            else:
                self.stream.write(f"labcap: status: {text}\n")
            self.stream.flush()

    def close(self) -> None:
        """Remove the live status line (the run's last lines follow)."""
        with self._lock:
            self._clear()
            self._shown = ""
            self.stream.flush()

    def _clear(self) -> None:
        if self.live and self._shown:
            self.stream.write("\r\x1b[K")

    def _draw(self, text: str) -> None:
        if self.live and text:
            width = _terminal_width(self.stream)
            self.stream.write(text if len(text) < width else text[: width - 2] + "…")


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 120


@dataclass
class StepFigures:
    """One step's figures so far, from its window records."""

    users: int
    requests: int = 0
    failures: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    hist: Any = None  # merged HDR histogram of the step's windows

    @property
    def error_pct(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    def p95_ms(self) -> float | None:
        if self.hist is None or self.hist.get_total_count() == 0:
            return None
        return self.hist.get_value_at_percentile(95) / 1000


class LiveMonitor:
    """The run's watch hook: follows the journal, draws the status line, stops a run whose
    target is clearly broken (see the module's docstring)."""

    def __init__(self, console: Console, *, early_stop: bool = True) -> None:
        self.console = console
        self.early_stop = early_stop
        self._offset = 0
        self._partial = ""
        self._config: dict[str, Any] | None = None
        self.t0_unix: float | None = None
        self.steps: dict[int, StepFigures] = {}
        self.current: int | None = None
        self.order: list[int] = []  # step indexes in the order they ran (probes)
        self.last_rps = 0.0
        self.active_users = 0
        self._last_draw = 0.0
        self._window_rows: dict[int, list[dict[str, Any]]] = {}
        self.stop_reason: str | None = None
        self._failed = False

    def __call__(self, journal: Path) -> str | None:
        if self._failed:
            return None
        try:
            return self._follow(journal)
        except Exception as e:  # a display bug must never cost the measurement
            self._failed = True
            self.console.line(f"live status off ({type(e).__name__}: {e}); the run goes on")
            return None

    def _follow(self, journal: Path) -> str | None:
        if self._config is None:
            cfg = journal.parent / ".engine.json"
            if cfg.is_file():
                self._config = json.loads(cfg.read_text())
        for record in self._new_records(journal):
            self._take(record)
        why = self._broken()
        now = time.monotonic()
        every = LIVE_EVERY_S if self.console.live else PLAIN_EVERY_S
        if not why and self.t0_unix is not None and now - self._last_draw >= every:
            self._last_draw = now
            self.console.status(self.status_text())
        if why:
            self.stop_reason = why
        return why

    def _new_records(self, journal: Path) -> list[dict[str, Any]]:
        try:
            with journal.open("r", encoding="utf-8") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except OSError:
            return []
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # a line the engine is still writing
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def _take(self, r: dict[str, Any]) -> None:
        kind = r.get("kind")
        if kind == "start":
            self.t0_unix = r.get("t0_unix")
        elif kind == "step":
            i = int(r["step_index"])
            self.steps[i] = StepFigures(users=int(r.get("users", 0)))
            self.current = i
            self.order.append(i)
        elif kind == "window":
            self._take_window(r)
        elif kind == "failure":
            st = self.steps.get(int(r.get("step_index", -1)))
            if st is not None:
                reason = str(r.get("reason", ""))[:120]
                st.reasons[reason] = st.reasons.get(reason, 0) + int(r.get("count", 0))

    def _take_window(self, r: dict[str, Any]) -> None:
        i = int(r["step_index"])
        st = self.steps.setdefault(i, StepFigures(users=int(r.get("target_users") or 0)))
        st.requests += int(r.get("requests") or 0)
        st.failures += int(r.get("failures") or 0)
        if r.get("hdr"):
            from labcap.histograms import new_histogram

            if st.hist is None:
                st.hist = new_histogram()
            st.hist.decode_and_add(r["hdr"])
        self.active_users = int(r.get("active_users") or 0)
        rows = self._window_rows.setdefault(int(r["window_index"]), [])
        rows.append(r)
        span = float(r["end_s"]) - float(r["start_s"])
        if span > 0:
            self.last_rps = sum(int(x.get("requests") or 0) for x in rows) / span
        if self.console.verbose:
            p95 = r.get("p95_us")
            self.console.line(
                f"window {r['window_index']} ({'settling' if r.get('settling') else 'steady'}) "
                f"{r.get('endpoint')}: {r.get('requests')} requests, {r.get('failures')} failed, "
                f"p95 {'n/a' if p95 is None else f'{p95 / 1000:.0f} ms'}"
            )

    def _broken(self) -> str | None:
        """A reason to stop: every finished step so far lost more than half its requests."""
        if not self.early_stop or self.stop_reason:
            return None
        finished = self.order[:-1]  # a step is whole once the next one began
        if not finished:
            return None
        for i in finished:
            st = self.steps[i]
            if st.requests < BROKEN_MIN_REQUESTS or st.error_pct <= BROKEN_ERROR_PCT:
                return None
        i = finished[-1]
        st = self.steps[i]
        top = max(st.reasons.items(), key=lambda kv: kv[1])[0] if st.reasons else "no reason given"
        what = self._step_name(i)
        return (
            f"{what} ({st.users} users): {st.error_pct:.0f} % of {st.requests} requests failed "
            f"({top}); the target looks broken, not loaded"
        )

    def _step_name(self, i: int) -> str:
        if self._searching:
            return f"probe {self.order.index(i) + 1}"
        return f"step {i + 1}/{len(self._plan_steps)}"

    @property
    def _searching(self) -> bool:
        return bool(self._config and self._config.get("search"))

    @property
    def _plan_steps(self) -> list[dict[str, Any]]:
        return list((self._config or {}).get("load", {}).get("steps", []))

    def status_text(self) -> str:
        """``step 2/3 | 10 users (10 active) | 0:42 elapsed, 1:18 left | 38.2 req/s | ...``"""
        elapsed = max(0.0, time.time() - (self.t0_unix or time.time()))
        parts = []
        if self.current is None:
            parts.append("starting users")
        else:
            st = self.steps[self.current]
            parts.append(f"{self._step_name(self.current)} | {st.users} users")
        parts.append(f"{self.active_users} active")
        if self._searching:
            parts.append(f"{_clock(elapsed)} elapsed (search: each probe ends once clear)")
        else:
            total = sum(float(s["duration_s"]) for s in self._plan_steps)
            parts.append(f"{_clock(elapsed)} elapsed, {_clock(max(0.0, total - elapsed))} left")
        parts.append(f"{self.last_rps:.1f} req/s")
        if self.current is not None:
            st = self.steps[self.current]
            parts.append(f"errors {st.failures} ({st.error_pct:.1f} %)")
            p95 = st.p95_ms()
            parts.append(f"p95 {'n/a' if p95 is None else f'{p95:.0f} ms'} (step so far)")
        return " | ".join(parts)


def _clock(seconds: float) -> str:
    """0:42, 12:05, 1:02:03."""
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
