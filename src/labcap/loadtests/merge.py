"""The Locust master's side of a multi-process run: worker windows merged exactly.

Each worker runs its own ``WindowRecorder`` on the master's clock (wall time
from the master's ``t0``) and sends every closed window's records (encoded HDR
histograms, counts, failure reasons, send-instant bins, its CPU time) to the
master as one Locust custom message. The master merges them here: counts add,
histograms add bucket by bucket (HDR histograms are exactly mergeable), send
bins add; then it journals one record per endpoint and window, exactly as a
single process would have.

No Locust import: the merger takes plain records, so it is tested on its own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import IO, Any

from hdrh.histogram import HdrHistogram

from labcap.histograms import histogram_summary, new_histogram
from labcap.loadtests.lockstep import SendClock, sends_record
from labcap.loadtests.recorder import step_summary
from labcap.model import LoadPlan

GRACE_S = 15.0  # a worker's window not in by its end + this: journalled without it


class WindowMerger:
    def __init__(
        self,
        plan: LoadPlan,
        journal: IO[str],
        workers: int,
        *,
        active_users: Callable[[], int] = lambda: 0,
        on_step_done: Callable[[int, dict[str, Any]], None] | None = None,
        sync: Callable[[int], Any] = os.fsync,
        grace_s: float = GRACE_S,
    ) -> None:
        self.plan = plan
        self.journal = journal
        self.workers = workers
        self.active_users = active_users
        self.on_step_done = on_step_done
        self.sync = sync
        self.grace_s = grace_s
        self.pos = 0
        self.parts: dict[int, dict[str, list[dict[str, Any]]]] = {}
        self.delivered: dict[int, set[str]] = {}
        self.seen_workers: set[str] = set()
        self.lost: dict[str, int] = {}  # worker gone -> the first window it did not deliver
        self._step_hist = new_histogram()
        self._step_counts = [0, 0]
        # the steady windows of the open step per (endpoint, method): [histogram, requests,
        # failures], as the recorder keeps them (the adaptive search judges a probe by them)
        self._step_series: dict[tuple[str, str], list[Any]] = {}
        self.gaps: list[str] = []
        self.step_users: dict[int, int] = {}  # users a step really ran (the search's counts)
        self.on_window: Callable[[Any, list[dict[str, Any]]], None] | None = None
        # a worker sends a window's send bins one window late (with the next window's
        # records, see WindowRecorder); they are merged and journalled then
        self.sends_parts: dict[int, dict[str, dict[str, Any]]] = {}
        self._sends_meta: dict[int, tuple[float, int]] = {}  # window: (end_s, users)

    @property
    def finished(self) -> bool:
        return self.pos >= len(self.plan.windows)

    def add(self, worker: str, records: list[dict[str, Any]]) -> None:
        """One message from ``worker``: the records of one (or more) closed windows."""
        self.seen_workers.add(worker)
        for r in records:
            idx = r.get("window_index")
            if r.get("kind") == "sends" and idx is not None and idx >= self.pos - 1:
                self.sends_parts.setdefault(idx, {})[worker] = r
                continue
            if idx is None or idx < self.pos:
                continue  # start/end records, or a window already journalled without it
            self.parts.setdefault(idx, {}).setdefault(worker, []).append(r)
            if r.get("kind") == "generator":  # a worker's last record of a window
                self.delivered.setdefault(idx, set()).add(worker)

    def lose(self, worker: str) -> int:
        """``worker`` is gone (its process or machine): windows it did not deliver yet are
        merged without waiting for it. Returns the first such window's index."""
        at = self.pos
        while at in self.delivered and worker in self.delivered[at]:
            at += 1
        self.lost.setdefault(worker, at)
        return self.lost[worker]

    def drop_rest(self) -> None:
        """End the plan here: no later window is journalled (the search needed no more)."""
        self._write_sends(self.pos - 1)  # the last journalled window's: as far as it came
        self.pos = len(self.plan.windows)
        self.parts.clear()
        self.delivered.clear()

    def poll(self, elapsed_s: float, *, force: bool = False) -> None:
        """Journal every window that all workers delivered (or that is overdue)."""
        windows = self.plan.windows
        while self.pos < len(windows):
            w = windows[self.pos]
            have = self.delivered.get(self.pos, set())
            gone = {n for n, at in self.lost.items() if at <= self.pos and n not in have}
            overdue = elapsed_s >= w.end_s + self.grace_s
            if len(have) + len(gone) < self.workers and not (force or overdue):
                return
            if len(have) < self.workers:
                lost = f" (lost: {', '.join(sorted(gone))})" if gone else ""
                self.gaps.append(
                    f"window {w.index}: {self.workers - len(have)} of {self.workers} "
                    f"workers sent no data{lost}"
                )
            self._merge(self.pos)
            self.parts.pop(self.pos, None)
            self.delivered.pop(self.pos, None)
            self.pos += 1

    def _merge(self, pos: int) -> None:
        w = self.plan.windows[pos]
        step = self.plan.steps[w.step_index]
        by_worker = self.parts.get(pos, {})
        records = [r for rs in by_worker.values() for r in rs]
        users = self.active_users()
        series: dict[tuple[str, str], dict[str, Any]] = {}
        end_s = w.start_s
        for r in records:
            if r["kind"] != "window":
                continue
            key = (r["endpoint"], r["method"])
            s = series.setdefault(key, {"requests": 0, "failures": 0, "hist": new_histogram()})
            s["requests"] += r["requests"]
            s["failures"] += r["failures"]
            if r.get("hdr"):
                s["hist"].add(HdrHistogram.decode(r["hdr"]))
            end_s = max(end_s, r["end_s"])
        if not series:
            end_s = w.end_s
        steady = not w.settling
        written: list[dict[str, Any]] = []
        for (name, method), s in sorted(series.items()):
            h = s["hist"]
            summary = histogram_summary(h)
            written.append({"endpoint": name, "method": method, "requests": s["requests"],
                            "failures": s["failures"], **summary})  # fmt: skip
            self._write(
                {
                    "kind": "window",
                    "window_index": w.index,
                    "step_index": w.step_index,
                    "start_s": w.start_s,
                    "end_s": end_s,
                    "settling": w.settling,
                    "target_users": self.step_users.get(step.index, step.users),
                    "active_users": users,
                    "endpoint": name,
                    "method": method,
                    "requests": s["requests"],
                    "failures": s["failures"],
                    **summary,
                    "hdr": h.encode().decode("ascii") if h.get_total_count() else "",
                }
            )
            if steady:
                self._step_hist.add(h)
                self._step_counts[0] += s["requests"]
                self._step_counts[1] += s["failures"]
                acc = self._step_series.setdefault((name, method), [new_histogram(), 0, 0])
                acc[0].add(h)
                acc[1] += s["requests"]
                acc[2] += s["failures"]
        reasons: dict[tuple[str, str, str], int] = {}
        for r in records:
            if r["kind"] == "failure":
                key = (r["endpoint"], r["method"], r["reason"])
                reasons[key] = reasons.get(key, 0) + r["count"]
        for (name, method, reason), count in sorted(reasons.items()):
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
        self._sends_meta[pos] = (end_s, users)
        self._write_sends(pos - 1)  # every worker's bins of it came with this window
        if pos + 1 >= len(self.plan.windows):
            self._write_sends(pos)  # the plan's last: the workers sent its bins at once
        for worker in sorted(by_worker):
            for r in by_worker[worker]:
                if r["kind"] == "generator":
                    self._write({**r, "worker": worker})
        self.journal.flush()
        self.sync(self.journal.fileno())
        if self.on_window is not None:
            self.on_window(w, written)
        last_of_step = pos + 1 >= len(self.plan.windows) or (
            self.plan.windows[pos + 1].step_index != w.step_index
        )
        if last_of_step:
            if self.on_step_done:
                self.on_step_done(
                    w.step_index,
                    step_summary(self._step_hist, self._step_counts, users, self._step_series),
                )
            self._step_hist = new_histogram()
            self._step_counts = [0, 0]
            self._step_series = {}

    def _write_sends(self, pos: int) -> None:
        """Window ``pos``'s sends record: the union of the workers' send bins."""
        if pos < 0 or pos not in self._sends_meta:
            return
        w = self.plan.windows[pos]
        end_s, users = self._sends_meta.pop(pos)
        parts = self.sends_parts.pop(pos, {})
        sends = SendClock(w.start_s, w.end_s)
        for r in parts.values():
            sends.add_sparse(r.get("bins") or [])
        self._write({**sends_record(w, sends, end_s, users), "workers": len(parts)})

    def _write(self, record: dict[str, Any]) -> None:
        self.journal.write(json.dumps(record, separators=(",", ":")) + "\n")


class MessageJournal:
    """A worker's journal: records collect here and leave as one message per flush."""

    def __init__(self, send: Callable[[list[dict[str, Any]]], None]) -> None:
        self.send = send
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        if not self.lines:
            return
        records = [json.loads(ln) for ln in "".join(self.lines).splitlines() if ln.strip()]
        self.lines = []
        self.send(records)

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        self.flush()


def wall_clock() -> float:
    return time.time()
