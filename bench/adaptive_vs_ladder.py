"""Time to the capacity answer: adaptive search vs a fixed 8-step ladder, on a target of
known capacity (tests/support/queue_server.py: k=4 workers, S=150 ms, users think
Z=1.35 s, so N* = k(S+Z)/S = 40 users; SLO p95 <= 2 S). (A benchmark, not a test.)

    .venv/bin/python bench/adaptive_vs_ladder.py [--step 9s]

Acceptance (issue 8): the search reaches the ladder's answer (+-10 %) in at most half
its wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "tests" / "support"
WORKERS, SERVICE_MS, THINK_S = 4, 150, 1.35


def run(url: str, users: list[str], step: str, out: Path) -> tuple[float, dict]:
    cmd = [
        sys.executable, "-m", "labcap.cli", "run", "--host", url,
        "--scenario", str(SUPPORT / "locustfile_queue.py"), *users,
        "--step-duration", step, "--settle", "3s", "--window", "2s", "--spawn-rate", "60",
        "--slo", f"p95_ms={2 * SERVICE_MS}", "--slo", "error_pct=1", "--no-calibrate",
        "--out", str(out), "--json",
    ]  # fmt: skip
    env = {
        **os.environ,
        "LABCAP_QUEUE_THINK_S": str(THINK_S),
        "LABCAP_QUEUE_CYCLE_S": str(SERVICE_MS / 1000 + THINK_S),
    }
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stderr.strip().splitlines()[-1])
    return wall, json.loads(r.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", default="9s")
    ap.add_argument("--ladder", default="8,16,24,32,40,48,56,64")
    ap.add_argument("--max-users", default="64")
    args = ap.parse_args()
    print("# command: .venv/bin/python bench/adaptive_vs_ladder.py " + " ".join(sys.argv[1:]))
    print(f"# load average {os.getloadavg()[0]:.1f}; theory N* = 40 users")
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "queue_server.py"), str(WORKERS), str(SERVICE_MS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        tmp = Path(tempfile.mkdtemp(prefix="labcap-bench-search-"))
        t_l, ladder = run(url, ["--users", args.ladder], args.step, tmp / "ladder")
        t_a, adaptive = run(
            url, ["--users", "auto", "--max-users", args.max_users], args.step, tmp / "auto"
        )
        manifests = {
            k: json.loads((tmp / k / "manifest.json").read_text()) for k in ("ladder", "auto")
        }
        search = manifests["auto"]["search"]
    finally:
        proc.kill()
        proc.wait()
    a_l, a_a = ladder["capacity"]["max_users_at_slo"], adaptive["capacity"]["max_users_at_slo"]
    print(f"{'method':<28}{'answer':>8}{'band':>12}{'steps':>7}{'wall s':>9}")
    print(f"{'fixed ladder ' + args.ladder:<28}{a_l:>8}{str(ladder['capacity']['band']):>12}"
          f"{len(ladder['steps']):>7}{t_l:>9.1f}")  # fmt: skip
    band_a = str(adaptive["capacity"]["band"])
    print(f"{'adaptive (max ' + args.max_users + ')':<28}{a_a:>8}"
          f"{band_a:>12}{len(search['probes']):>7}{t_a:>9.1f}")  # fmt: skip
    print("probe path: " + ", ".join(
        f"{p['users']}{'+' if p['verdict'] == 'pass' else '-'}"
        + ("(early)" if p["stopped_early"] or p.get("passed_early") else "")
        + f" {p['wall_s']}s" for p in search["probes"]))  # fmt: skip
    for p in search["probes"]:
        print(f"  probe {p['order']}: {p['users']} users, {p['verdict']}, {p['wall_s']} s, "
              f"{p['rps']:.1f} req/s; chosen: {p.get('chosen', '')}")  # fmt: skip
    for k, m in manifests.items():
        print(f"{k}: status {m['status']}; lock-step windows {m['lockstep']['windows_flagged']} "
              f"of {m['lockstep']['windows_judged']}; generator CPU max "
              f"{m['generator']['per_worker']['local']['cpu_pct_max']} %"
              + "".join(f"\n  reason: {r}" for r in m.get("status_reasons", [])))  # fmt: skip
    within = a_l and abs(a_a - a_l) <= 0.1 * a_l
    print(
        f"adaptive answer within 10 % of the ladder's: {bool(within)}; "
        f"time ratio adaptive/ladder: {t_a / t_l:.2f} (acceptance <= 0.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
