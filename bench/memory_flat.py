"""Does the load engine's memory stay flat as a run gets longer? (A benchmark, not a test.)

Runs one long step against a loopback HTTP target with the test locustfile
and samples the engine subprocess's RSS every few seconds. Prints RSS over
time and the growth between the first and last minute.

    python bench/memory_flat.py [--minutes 5] [--users 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "tests" / "support"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--sample-s", type=float, default=5.0)
    args = ap.parse_args()
    target = subprocess.Popen(
        [sys.executable, str(SUPPORT / "target_server.py")], stdout=subprocess.PIPE, text=True
    )
    port = int(target.stdout.readline())
    out = Path(tempfile.mkdtemp(prefix="labcap-bench-")) / "run"
    duration_s = int(args.minutes * 60)
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labcap.cli",
            "run",
            "--host",
            f"http://127.0.0.1:{port}",
            "--scenario",
            str(SUPPORT / "locustfile_target.py"),
            "--users",
            str(args.users),
            "--step-duration",
            f"{duration_s}s",
            "--settle",
            "5s",
            "--window",
            "5s",
            "--out",
            str(out),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    engine = None
    try:
        while run.poll() is None:
            if engine is None:
                kids = psutil.Process(run.pid).children()
                engine = next(
                    (k for k in kids if "labcap.loadtests.engine" in " ".join(k.cmdline())), None
                )
            if engine is not None:
                try:
                    samples.append((time.monotonic() - t0, engine.memory_info().rss))
                except psutil.NoSuchProcess:
                    break
            time.sleep(args.sample_s)
        stdout, _ = run.communicate(timeout=120)
    finally:
        target.kill()
    import json

    plan = json.loads(stdout)
    requests = sum(s["requests"] for s in plan["steps"])
    print(f"engine RSS, {args.users} users for {args.minutes:g} min, {requests} steady requests")
    print(f"{'t (s)':>8} {'RSS (MiB)':>10}")
    for t, rss in samples[:: max(1, len(samples) // 12)]:
        print(f"{t:8.0f} {rss / 2**20:10.1f}")
    first = [r for t, r in samples if 50 <= t <= 70]
    last = [r for t, r in samples if t >= samples[-1][0] - 20]
    if first and last:
        a, b = max(first) / 2**20, max(last) / 2**20
        print(
            f"RSS at ~1 min: {a:.1f} MiB; at the end ({samples[-1][0]:.0f} s): {b:.1f} MiB; "
            f"growth {b - a:+.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
