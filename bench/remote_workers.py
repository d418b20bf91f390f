"""How much one master coordinates: merge cost per window, and real runs with 2, 4 and 8
`labcap worker` processes. (A benchmark, not a test.)

    .venv/bin/python bench/remote_workers.py [--workers 2,4,8] [--seconds 30] [--users 64]

Part 1 (merge cost): the master's own work per window, in this process: W workers' window
messages (MAC check over their records, HDR decode and add, journal write) for E endpoints,
each window of each worker holding LOGNORMAL latencies (1 ms .. seconds: hundreds of HDR
buckets). Prints ms per merged window and per worker-window.

Part 2 (real runs): `labcap run --expect-workers W` (master on 127.0.0.1) with W `labcap
worker` processes on 127.0.0.2.. against a cheap loopback target (nginx, else labcap's
asyncio target); FastHttpUser users with no wait, 1 s windows. Prints the merged req/s, the
master engine's CPU (% of one core, from /proc via psutil), the master's CPU per
worker-window, and how late each window was journalled after its end.

Then states the largest worker count (and so request rate and users) one master core
coordinates: 1 s windows / CPU per worker-window, and what that means at the workers'
measured rate.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_common import PY, ROOT, free_port, nginx_target

from labcap.histograms import new_histogram
from labcap.loadtests import handshake as hs
from labcap.loadtests.engine import RemoteAuth
from labcap.loadtests.merge import MessageJournal, WindowMerger
from labcap.loadtests.recorder import WindowRecorder
from labcap.model import build_plan
from labcap.store import JOURNAL

LOCUSTFILE = ROOT / "bench" / "locustfile_fast.py"
SECRET = "bench-worker-secret-0123456789abcdef"


def merge_cost(workers: int, endpoints: int, per_window: int, windows: int = 30) -> dict:
    """ms of master CPU per merged window (MAC check + merge + journal), W workers."""
    plan = build_plan((10,), float(windows), settle_s=1.0, window_s=1.0, spawn_rate=10)
    rng = random.Random(workers * 100 + endpoints)
    messages: list[tuple[str, dict]] = []
    keys = {f"w{i + 1}": os.urandom(32) for i in range(workers)}
    for name, key in keys.items():

        class Clock:
            t = 0.0

            def __call__(self) -> float:
                return self.t

        clock = Clock()

        def send(records: list, name: str = name, key: bytes = key) -> None:
            mac = hs.mac(key, "window", name, hs.digest(records))
            messages.append((name, {"worker": name, "records": records, "mac": mac}))

        rec = WindowRecorder(plan, MessageJournal(send), clock=clock, sync=lambda fd: None,
                             worker=name, emit_bins=True)  # type: ignore[arg-type]  # fmt: skip
        rec.t0 = 0.0
        for w in plan.windows:
            for _ in range(per_window):
                clock.t = rng.uniform(w.start_s, w.end_s - 1e-6)
                ms = rng.lognormvariate(2.0, 1.0)
                rec.on_request("GET", f"api.{rng.randrange(endpoints)}", ms)
            clock.t = w.end_s
            rec.advance()
    messages.sort(key=lambda m: m[1]["records"][0].get("window_index", 0))
    out = io.StringIO()
    out.fileno = lambda: -1  # type: ignore[method-assign]
    merger = WindowMerger(plan, out, workers, sync=lambda fd: None)
    auth = RemoteAuth({n: k.hex() for n, k in keys.items()})
    auth.clients = {f"cid-{n}": n for n in keys}
    cpu0 = time.process_time()
    for name, data in messages:
        assert auth.window_ok(f"cid-{name}", data)
        merger.add(data["worker"], data["records"])
        merger.poll(0.0)
    merger.poll(1e9)
    cpu = time.process_time() - cpu0
    assert merger.finished and not merger.gaps
    merged = len(plan.windows)
    return {"workers": workers, "endpoints": endpoints, "requests_per_worker_window": per_window,
            "ms_per_window": round(1000 * cpu / merged, 3),
            "ms_per_worker_window": round(1000 * cpu / merged / workers, 3)}  # fmt: skip


def real_run(workers: int, seconds: float, users: int, url: str) -> dict:
    import psutil

    port = free_port()
    out = Path(tempfile.mkdtemp(prefix="labcap-bench-remote-")) / "run"
    env = {**os.environ, "LABCAP_WORKER_SECRET": SECRET}
    master = subprocess.Popen(
        [PY, "-m", "labcap.cli", "run", "--host", url, "--scenario", str(LOCUSTFILE),
         "--users", str(users), "--step-duration", f"{seconds:g}s", "--settle", "5s",
         "--window", "1s", "--spawn-rate", "500", "--expect-workers", str(workers),
         "--master-bind", f"127.0.0.1:{port}", "--no-calibrate", "--slo", "p95_ms=1000",
         "--out", str(out), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    procs = [
        subprocess.Popen(
            [
                PY,
                "-m",
                "labcap.cli",
                "worker",
                "--master",
                f"127.0.0.1:{port}",
                "--bind",
                f"127.0.0.{2 + i}",
                "--no-calibrate",
                "--wait",
                "60s",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for i in range(workers)
    ]
    journal = out / JOURNAL
    offset = 0
    seen: dict[int, float] = {}
    t0 = None
    engine = None
    cpu_start = cpu_end = None
    deadline = time.monotonic() + seconds + 180
    while master.poll() is None and time.monotonic() < deadline:
        if engine is None:
            for c in psutil.Process(master.pid).children():
                try:
                    if "labcap.loadtests.engine" in " ".join(c.cmdline()):
                        engine = c
                except psutil.Error:
                    pass
        if journal.exists():
            with journal.open() as f:  # only what was appended since the last look
                f.seek(offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            offset += len(complete.encode())
            for line in complete.splitlines():
                if '"kind":"start"' in line and t0 is None:
                    t0 = json.loads(line)["t0_unix"]
                if '"kind":"window"' in line:
                    i = json.loads(line)["window_index"]
                    seen.setdefault(i, time.time())
        if engine is not None and t0 is not None:
            try:
                t = engine.cpu_times()
                now = (t.user + t.system, time.monotonic())
                if cpu_start is None:
                    cpu_start = now
                cpu_end = now
            except psutil.Error:
                pass
        time.sleep(0.05)
    stdout, stderr = master.communicate(timeout=60)
    for p in procs:
        p.wait(timeout=60)
    if master.returncode != 0:
        return {"workers": workers, "error": stderr.strip().splitlines()[-1:]}
    import pandas as pd

    manifest = json.loads((out / "manifest.json").read_text())
    windows = pd.read_parquet(out / "windows.parquet")
    steady = windows[~windows["settling"]]
    rps = steady["requests"].sum() / max(1e-9, (steady["end_s"] - steady["start_s"]).sum())
    plan_windows = {int(r.window_index): float(r.end_s) for r in windows.itertuples()}
    lags = [seen[i] - (t0 + end) for i, end in plan_windows.items() if i in seen and t0]
    master_cpu = None
    if cpu_start and cpu_end and cpu_end[1] > cpu_start[1]:
        master_cpu = 100 * (cpu_end[0] - cpu_start[0]) / (cpu_end[1] - cpu_start[1])
    per_worker = manifest["generator"]["per_worker"]
    return {
        "workers": workers,
        "status": manifest["status"],
        "merged_rps": round(float(rps), 1),
        "requests": int(windows["requests"].sum()),
        "master_cpu_pct": None if master_cpu is None else round(master_cpu, 1),
        "master_cpu_ms_per_worker_window": None
        if master_cpu is None
        else round(10 * master_cpu / workers, 2),
        "worker_cpu_pct_mean": round(
            statistics.mean(w["cpu_pct_mean"] or 0 for w in per_worker.values()), 1
        ),
        "journal_lag_s_median": round(statistics.median(lags), 3) if lags else None,
        "journal_lag_s_max": round(max(lags), 3) if lags else None,
    }


BUDGET_MS_PER_S = 700.0  # 70 % of one master core, as the worker sizing leaves its cores


def summarise(costs: list[dict], runs: list[dict]) -> None:
    """The master's ceiling: its fixed CPU per second (real runs: Locust's loops, heartbeats,
    stats, the ticker) plus the merge cost per worker-window (part 1), against 70 % of a
    core at 1 s windows."""
    print("\n## the master's ceiling (1 s windows, 70 % of one master core)")
    measured = [r for r in runs if r.get("master_cpu_pct") is not None]
    fixed = max((10 * r["master_cpu_pct"] for r in measured), default=0.0)
    pcts = [r.get("master_cpu_pct") for r in runs]
    ws = [r["workers"] for r in runs]
    print(f"master CPU in the real runs: {pcts} % of a core for W = {ws}; taken as fixed: "
          f"{fixed:.0f} ms/s")  # fmt: skip
    for endpoints in sorted({c["endpoints"] for c in costs}):
        per = max(c["ms_per_worker_window"] for c in costs if c["endpoints"] == endpoints)
        w_max = int((BUDGET_MS_PER_S - fixed) / per)
        line = (f"{endpoints} endpoint(s): {per:.2f} ms per worker-window (worst W) => "
                f"~{w_max} workers")  # fmt: skip
        rates = [r["merged_rps"] / r["workers"] for r in measured if r.get("merged_rps")]
        if rates:
            rate = max(rates)
            line += (f"; at {rate:.0f} req/s per worker (the best seen here) ~{w_max * rate:,.0f}"
                     f" req/s, i.e. ~{w_max * rate * 10:,.0f} users at a 10 s cycle")  # fmt: skip
        print(line)
    print("(extrapolated from CPU cost: runs here went to 8 workers only; Locust's own "
          "dispatch and ZeroMQ fan-out beyond that are not measured)")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="2,4,8")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--skip-runs", action="store_true")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    print("# command: .venv/bin/python bench/remote_workers.py " + " ".join(os.sys.argv[1:]))
    print(f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    _ = new_histogram  # (the histograms' import warms numpy before the timings)
    print("\n## part 1: master merge cost per window (this process, CPU time)")
    costs = []
    for endpoints, per in ((1, 1000), (10, 1000)):
        for w in counts:
            c = merge_cost(w, endpoints, per)
            costs.append(c)
            print(json.dumps(c))
    runs = []
    if not args.skip_runs:
        print("\n## part 2: real runs, master + W `labcap worker` processes on this machine")
        with nginx_target() as url:
            for w in counts:
                r = real_run(w, args.seconds, args.users, url)
                runs.append(r)
                print(json.dumps(r), flush=True)
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")
    summarise(costs, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
