"""10,000 simulated users with a 5-15 s think time from this machine: generator CPU per
Locust worker. (A benchmark, not a test.)

    .venv/bin/python bench/many_users.py [--users 10000] [--minutes 2] [--workers 2]

Runs `labcap run --workers N` (Locust master/worker) with FastHttpUser users against
nginx on loopback (labcap's asyncio target without nginx) and prints what the manifest
records per worker: mean and max CPU per window, % of one core. Acceptance (issue 8):
held for 2 minutes with every worker below 80 %.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import PY, ROOT, nginx_target

LOCUSTFILE = ROOT / "bench" / "locustfile_think.py"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--workers", default="2")
    ap.add_argument("--spawn-rate", type=float, default=500)
    args = ap.parse_args()
    print("# command: .venv/bin/python bench/many_users.py " + " ".join(sys.argv[1:]))
    print(f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    ramp_s = args.users / args.spawn_rate
    hold_s = args.minutes * 60
    out = Path(tempfile.mkdtemp(prefix="labcap-bench-users-")) / "run"
    with nginx_target() as url:
        cmd = [
            PY, "-m", "labcap.cli", "run", "--host", url, "--scenario", str(LOCUSTFILE),
            "--users", str(args.users), "--step-duration", f"{ramp_s + hold_s:g}s",
            "--settle", f"{ramp_s:g}s", "--window", "10s", "--spawn-rate", str(args.spawn_rate),
            "--workers", args.workers, "--no-calibrate", "--slo", "p95_ms=1000",
            "--out", str(out), "--json",
        ]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=ramp_s + hold_s + 300)
    if r.returncode:
        print(r.stderr[-2000:])
        return 1
    plan = json.loads(r.stdout)
    m = json.loads((out / "manifest.json").read_text())
    step = plan["steps"][0]
    print(f"users {args.users}, ramp {ramp_s:g}s, held {hold_s:g}s (steady windows): "
          f"{step['requests']} requests, {step['rps']:.0f} req/s, p95 {step['p95_ms']} ms, "
          f"{step['error_pct']:.2f} % failed, active users {step['active_users']}")  # fmt: skip
    print(f"{'worker':<8}{'windows':>8}{'CPU mean %':>12}{'CPU max %':>11}")
    for name, w in m["generator"]["per_worker"].items():
        print(f"{name:<8}{w['windows']:>8}{w['cpu_pct_mean']:>12}{w['cpu_pct_max']:>11}")
    for warning in m["generator"]["warnings"]:
        print(f"warning: {warning}")
    print(f"lock-step: {m['lockstep']['flagged']}; run status {m['status']} "
          f"{m['status_reasons'][:2]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
