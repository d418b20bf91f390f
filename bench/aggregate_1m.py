"""Aggregating 1 M request records: labcap's recorder (HDR per window x endpoint) and the
master's exact merge of two workers' windows. (A benchmark, not a test.)

    .venv/bin/python bench/aggregate_1m.py [--requests 1000000]

Prints the time per request in the recorder (what Locust's request event costs labcap
inside the load generator), the time to merge the same records from two workers, and
the journal's size; checks the merged totals equal the single-process ones.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time

from labcap.loadtests.merge import MessageJournal, WindowMerger
from labcap.loadtests.recorder import WindowRecorder
from labcap.model import build_plan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.requests
    print(f"# command: .venv/bin/python bench/aggregate_1m.py --requests {n}")
    plan = build_plan((50, 100, 200), 120.0, settle_s=30, window_s=5.0, spawn_rate=10)
    rng = random.Random(1)
    endpoints = [f"api.e{i}" for i in range(8)]
    dur = plan.duration_s - 0.01
    events = [
        (dur * i / n, endpoints[rng.randrange(8)], rng.lognormvariate(1.5, 1.0), i % 7)
        for i in range(n)
    ]
    clock = [0.0]

    def record(rec, evs, sink_len):
        rec.t0 = 0.0
        t0 = time.perf_counter()
        for t, ep, ms, user in evs:
            clock[0] = t
            rec.on_request("GET", ep, ms, context={"labcap_user": user})
        clock[0] = plan.duration_s + 0.01
        rec.advance()
        return time.perf_counter() - t0

    single = io.StringIO()
    single.fileno = lambda: -1
    rec = WindowRecorder(plan, single, clock=lambda: clock[0], sync=lambda fd: None)
    s_single = record(rec, events, None)
    out = single.getvalue()
    windows = [json.loads(x) for x in out.splitlines() if '"window"' in x]
    print(f"recorder, one process: {n} requests in {s_single:.2f} s = "
          f"{1e6 * s_single / n:.2f} µs per request; journal {len(out) / 1e6:.1f} MB, "
          f"{len(windows)} window x endpoint records")  # fmt: skip

    merged = io.StringIO()
    merged.fileno = lambda: -1
    merger = WindowMerger(plan, merged, 2, sync=lambda fd: None)
    t_workers = 0.0
    for w in (0, 1):
        name = f"w{w}"
        r = WindowRecorder(
            plan, MessageJournal(lambda recs, name=name: merger.add(name, recs)),
            clock=lambda: clock[0], sync=lambda fd: None, worker=name, emit_bins=True,
        )  # fmt: skip
        t_workers += record(r, events[w::2], None)
    t0 = time.perf_counter()
    merger.poll(plan.duration_s + 1)
    t_merge = time.perf_counter() - t0
    got = [json.loads(x) for x in merged.getvalue().splitlines() if '"window"' in x]
    same = [(g["requests"], g["p99_us"], g["p50_us"]) for g in got] == [
        (e["requests"], e["p99_us"], e["p50_us"]) for e in windows
    ]
    print(f"two workers' recorders: {t_workers:.2f} s together; master merge of "
          f"{len(got)} records: {t_merge:.2f} s; merged == single process: {same}")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
