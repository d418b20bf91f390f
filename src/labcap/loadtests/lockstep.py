"""Lock-step detection: are the users sending in synchronised bursts?

With many users and a constant wait (or ``constant_throughput``), Locust can
start a whole spawn batch at one instant and keep it in step: every cycle,
dozens of requests leave within a millisecond, queue behind each other in the
generator and the target, and the p99 then measures the generator's burst, not
the target. This module counts send instants (request start = end minus
response time) in 1 ms bins per window, and compares the share of sends that
leave in a *burst* with what independent (Poisson) users would produce at the
same rate.

A burst is a slot of width ``tau`` holding at least ``k`` sends. ``tau`` is
chosen so independent users expect at most ``TARGET_MEAN`` sends per slot, and
``k`` is at least ``MIN_BURST``, so one user's own back-to-back requests
(sequential, each waiting for its answer) rarely make a burst. A window is
flagged when at least ``FLAG_SHARE`` of its sends are in bursts and that is at
least ``FLAG_RATIO`` times the Poisson expectation.

No Locust or numpy import at module level: the recorder calls this inside the
engine's event loop, once per window.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

BIN_S = 0.001
TARGET_MEAN = 0.5  # independent users' mean sends per slot
MAX_TAU_BINS = 50  # slots never wider than 50 ms
MIN_BURST = 5
# A burst must hold this share of the active users: a closed system at saturation
# releases a few users at once (k server threads finishing together), lock-step
# releases a spawn batch
USERS_SHARE = 0.2
FLAG_SHARE = 0.25
FLAG_RATIO = 10.0
MIN_SENDS = 50  # fewer sends than this: too few to judge
MAX_BINS = 3_600_000  # one hour of 1 ms bins; longer windows are cut

METHOD = (
    f"share of request sends (one per user per 100 ms) that leave in bursts (>= {MIN_BURST} "
    f"sends and >= {USERS_SHARE:.0%} of the active users, more at high rates, within a slot "
    f"sized so independent users expect <= {TARGET_MEAN:g} per slot, at most {MAX_TAU_BINS} "
    f"ms) against the Poisson expectation at the same rate; flagged when >= {FLAG_SHARE:.0%} "
    f"of sends are in bursts and >= {FLAG_RATIO:g}x the expectation"
)


@dataclass(frozen=True)
class BurstStats:
    sends: int
    rate_per_s: float
    slot_ms: int
    burst_min_sends: int
    burst_pct: float  # share of sends in bursts, %
    expected_pct: float  # the same share for independent users, %
    lockstep: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class SendClock:
    """Counts send instants in 1 ms bins over one window [start_s, end_s)."""

    __slots__ = ("start_s", "bins", "sends")

    def __init__(self, start_s: float, end_s: float) -> None:
        self.start_s = start_s
        n = max(1, min(MAX_BINS, math.ceil((end_s - start_s) / BIN_S)))
        self.bins = array("I", bytes(4 * n))  # uint32 per ms: compact, no numpy needed here
        self.sends = 0

    def add(self, t_s: float) -> None:
        """One send at ``t_s`` (same clock as the window). A send before the window is not
        counted: piled on the first bin, a slow target's requests read as a burst (755 ms
        answers: 38 % of a 2 s window's sends); the recorder gives it to its own window."""
        if t_s < self.start_s:
            return
        i = int((t_s - self.start_s) / BIN_S)
        n = len(self.bins)
        self.bins[n - 1 if i >= n else i] += 1
        self.sends += 1

    def sparse(self) -> list[list[int]]:
        """Non-empty bins as [index, count] pairs (what a Locust worker sends its master)."""
        return [[i, c] for i, c in enumerate(self.bins) if c]

    def add_sparse(self, pairs: list[list[int]]) -> None:
        n = len(self.bins)
        for i, c in pairs:
            self.bins[min(max(int(i), 0), n - 1)] += int(c)
            self.sends += int(c)

    def stats(self, duration_s: float | None = None, users: int = 0) -> BurstStats:
        return burst_stats(self.bins, duration_s, users)


def _poisson_tail(mu: float, k: int) -> float:
    """P(N >= k) for N ~ Poisson(mu)."""
    if mu <= 0:
        return 0.0
    term = math.exp(-mu)
    below = 0.0
    for i in range(k):
        below += term
        term *= mu / (i + 1)
    return max(0.0, 1.0 - below)


def burst_stats(
    counts_per_ms: Sequence[int], duration_s: float | None = None, users: int = 0
) -> BurstStats:
    """Burst share of one window's sends, from send counts in 1 ms bins.

    ``users`` (active users, if known) raises the burst size to USERS_SHARE of them.
    """
    import numpy as np

    counts = np.asarray(counts_per_ms, dtype=np.int64)
    sends = int(counts.sum())
    duration_s = duration_s or len(counts) * BIN_S
    rate = sends / duration_s if duration_s > 0 else 0.0
    per_bin = rate * BIN_S
    tau = max(1, min(MAX_TAU_BINS, int(TARGET_MEAN / per_bin))) if per_bin > 0 else MAX_TAU_BINS
    mu = per_bin * tau
    k = max(MIN_BURST, math.ceil(3 * mu + 3), math.ceil(USERS_SHARE * users))
    # sends per slot of tau bins (vectorised: a Python loop over a window's ~1000 bins cost
    # the event loop ~0.2 ms per window)
    slots = np.add.reduceat(counts, np.arange(0, len(counts), tau)) if len(counts) else counts
    in_bursts = int(slots[slots >= k].sum())
    share = in_bursts / sends if sends else 0.0
    # A send is in a burst when the other sends of its slot number >= k - 1 (size-biased).
    expected = _poisson_tail(mu, k - 1)
    flagged = sends >= MIN_SENDS and share >= FLAG_SHARE and share >= FLAG_RATIO * expected
    return BurstStats(
        sends=sends,
        rate_per_s=round(rate, 3),
        slot_ms=tau,
        burst_min_sends=k,
        burst_pct=round(100 * share, 3),
        expected_pct=round(100 * expected, 4),
        lockstep=flagged,
    )


def sends_record(window: Any, clock: SendClock, end_s: float, users: int) -> dict[str, Any]:
    """The journal's ``sends`` record of one window (the recorder's and the master's)."""
    return {
        "kind": "sends",
        "window_index": window.index,
        "step_index": window.step_index,
        "settling": window.settling,
        **clock.stats(max(end_s - window.start_s, 1e-3), users).to_dict(),
    }


def summarise(windows: list[dict[str, object]]) -> dict[str, object]:
    """The run-level lock-step verdict from per-window ``sends`` records (steady ones)."""
    judged = [w for w in windows if int(w.get("sends", 0) or 0) >= MIN_SENDS]
    flagged = [w for w in judged if w.get("lockstep")]
    return {
        "flagged": bool(flagged),
        "windows_judged": len(judged),
        "windows_flagged": len(flagged),
        "flagged_window_indexes": [int(w["window_index"]) for w in flagged][:50],
        "max_burst_pct": max((float(w["burst_pct"]) for w in judged), default=None),
        "method": METHOD,
    }
