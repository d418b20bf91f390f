"""Load generators side by side on one nginx target: wrk, raw Locust FastHttpUser, labcap.

(A benchmark, not a test.) Two parts, same target, same run:

1. flat out, 20 connections/users, one process each: req/s, CPU (% of a core) and req/s
   per core; labcap's load path is `labcap run` with its collectors on (host; GPU auto),
   in one process and with --workers 1 and --workers 2 (Locust master/worker).
2. a fixed 200 req/s from 20 users (each 10 req/s): p50/p95/p99 response time and what each
   adds over wrk (whose delay script paces its 20 connections alike), for raw Locust as it
   comes (constant_throughput: lock-step), raw Locust de-synchronised as labcap does it, and
   labcap, and Locust's HTTP client (geventhttpclient) alone, without Locust: the floor of
   any FastHttpUser-based path; and labcap with its own WireHttpUser, timed to the kernel's
   receipt of each response; medians over interleaved rounds (a VM's latency drifts).

    .venv/bin/python bench/loadgen_compare.py [--seconds 8] [--paced-seconds 15] [--repeats 3]

Acceptance (issue 8): labcap >= 0.9 x raw FastHttpUser req/s per process; 2 workers
>= 1.7 x one; added p99 over wrk at 200 req/s <= 0.5 ms with no lock-step flag.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench_common import PY, ROOT, nginx_target, run_timed

BENCH = ROOT / "bench"
LOCUSTFILE = BENCH / "locustfile_fast.py"


def wrk(url: str, seconds: float, delay_ms: float = 0) -> dict:
    if not shutil.which("wrk"):
        return {"error": "wrk not installed (apt-get install wrk)"}
    r, wall, cpu = run_timed(
        ["wrk", "-t1", "-c20", f"-d{seconds:g}s", "-s", str(BENCH / "wrk_report.lua"), url],
        env={**os.environ, "WRK_DELAY_MS": str(delay_ms)},
    )
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("JSON "))
    d = json.loads(line[5:])
    rps = d["requests"] / (d["duration_us"] / 1e6)
    return {
        "rps": rps,
        "cpu_frac": cpu / wall,  # includes wrk's start, negligible
        **{f"p{q}_ms": d[f"p{q}_us"] / 1000 for q in (50, 95, 99)},
    }


def raw_locust(url: str, seconds: float, rate: float, jitter: bool = False) -> dict:
    cmd = [PY, str(BENCH / "_raw_locust.py"), url, "20", str(seconds), str(rate)]
    r, _, _ = run_timed(cmd + (["jitter"] if jitter else []))
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def raw_client(url: str, seconds: float, rate: float) -> dict:
    r, _, _ = run_timed([PY, str(BENCH / "_raw_client.py"), url, "20", str(seconds), str(rate)])
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def labcap(url: str, seconds: float, rate: float, workers: int = 0, client: str = "fast") -> dict:
    out = Path(tempfile.mkdtemp(prefix="labcap-bench-")) / "run"
    cmd = [
        PY, "-m", "labcap.cli", "run", "--host", url, "--scenario", str(LOCUSTFILE),
        "--users", "20", "--step-duration", f"{seconds + 3:g}s", "--settle", "3s",
        "--window", "1s", "--spawn-rate", "20" if rate else "1000", "--no-calibrate",
        "--workers", str(workers), "--out", str(out), "--json",
    ]  # fmt: skip
    env = {**os.environ, "LABCAP_BENCH_RATE": str(rate), "LABCAP_BENCH_CLIENT": client}
    r, _, _ = run_timed(cmd, env=env)
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1]}
    import pandas as pd
    from hdrh.histogram import HdrHistogram

    from labcap.histograms import new_histogram

    w = pd.read_parquet(out / "windows.parquet")
    w = w[~w["settling"].astype(bool)]
    h = new_histogram()
    for enc in w["hdr"]:
        if enc:
            h.add(HdrHistogram.decode(enc))
    steady_s = (
        w.groupby("window_index")["end_s"].first() - w.groupby("window_index")["start_s"].first()
    )
    manifest = json.loads((out / "manifest.json").read_text())
    gens = manifest["generator"]["per_worker"]
    cpu = [g["cpu_pct_mean"] / 100 for g in gens.values() if g["cpu_pct_mean"] is not None]
    res = {
        "rps": w["requests"].sum() / steady_s.sum(),
        "cpu_frac": sum(cpu),
        "cpu_per_process": [round(c * 100) for c in cpu],
        "lockstep": manifest["lockstep"]["flagged"],
        **{f"p{q}_ms": h.get_value_at_percentile(q) / 1000 for q in (50, 95, 99)},
    }
    shutil.rmtree(out.parent, ignore_errors=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--paced-seconds", type=float, default=15.0)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the paced part")
    args = ap.parse_args()
    print("# command: .venv/bin/python bench/loadgen_compare.py " + " ".join(sys.argv[1:]))
    print(f"# machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with nginx_target() as url:
        print(f"# target: {url}")
        print("\n## flat out, 20 connections/users")
        print(f"{'generator':<34}{'req/s':>9}{'CPU %':>8}{'req/s/core':>12}")
        flat = {
            "wrk -t1 -c20": wrk(url, args.seconds),
            "raw Locust FastHttpUser": raw_locust(url, args.seconds, 0),
            "labcap run (1 process)": labcap(url, args.seconds, 0),
            "labcap run --workers 1": labcap(url, args.seconds, 0, workers=1),
            "labcap run --workers 2": labcap(url, args.seconds, 0, workers=2),
            "labcap run, WireHttpUser": labcap(url, args.seconds, 0, client="wire"),
        }
        for name, r in flat.items():
            if "error" in r:
                print(f"{name:<34} error: {r['error']}")
                continue
            per_core = r["rps"] / r["cpu_frac"] if r["cpu_frac"] else float("nan")
            extra = f"  per process {r['cpu_per_process']} %" if "cpu_per_process" in r else ""
            print(f"{name:<34}{r['rps']:>9.0f}{100 * r['cpu_frac']:>8.0f}{per_core:>12.0f}{extra}")
        raw, one = flat["raw Locust FastHttpUser"], flat["labcap run (1 process)"]
        w1, w2 = flat["labcap run --workers 1"], flat["labcap run --workers 2"]
        if not any("error" in r for r in (raw, one, w1, w2)):
            ratio = (one["rps"] / one["cpu_frac"]) / (raw["rps"] / raw["cpu_frac"])
            print(f"labcap / raw Locust, req/s per core: {ratio:.2f} (acceptance >= 0.9)")
            print(f"labcap 2 workers / 1 worker, req/s: {w2['rps'] / w1['rps']:.2f} (>= 1.7)")
        wire = flat["labcap run, WireHttpUser"]
        if "error" not in wire and "error" not in raw:
            ratio = (wire["rps"] / wire["cpu_frac"]) / (raw["rps"] / raw["cpu_frac"])
            print(f"labcap WireHttpUser / raw Locust FastHttpUser, req/s per core: {ratio:.2f}")

        print("\n## fixed 200 req/s from 20 users (10 req/s each)")
        print(f"{'generator':<34}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'+p50':>8}{'+p95':>8}"
              f"{'+p99':>8}  lock-step")  # fmt: skip
        generators = {
            "wrk (delay script)": lambda: wrk(url, args.paced_seconds, delay_ms=100),
            "geventhttpclient alone, jittered": lambda: raw_client(url, args.paced_seconds, 10),
            "raw Locust FastHttpUser": lambda: raw_locust(url, args.paced_seconds, 10),
            "raw Locust, jittered as labcap": lambda: raw_locust(
                url, args.paced_seconds, 10, jitter=True
            ),
            "labcap run (1 process)": lambda: labcap(url, args.paced_seconds, 10),
            "labcap run, WireHttpUser": lambda: labcap(url, args.paced_seconds, 10, client="wire"),
        }
        rounds = []
        for i in range(args.repeats):  # interleaved, so drift on the machine hits all alike
            rounds.append({name: run() for name, run in generators.items()})
            if args.repeats > 1:
                print(f"# round {i + 1}/{args.repeats}: " + ", ".join(
                    f"{n.split(' (')[0]} p99 {r.get('p99_ms', float('nan')):.2f}"
                    for n, r in rounds[-1].items()))  # fmt: skip
        paced = {name: _median_of(r[name] for r in rounds) for name in generators}
        if args.repeats > 1:
            print(f"# medians over {args.repeats} interleaved rounds")
        base = paced["wrk (delay script)"]
        for name, r in paced.items():
            if "error" in r or "error" in base:
                print(f"{name:<34} error: {r.get('error') or base.get('error')}")
                continue
            added = [r[f"p{q}_ms"] - base[f"p{q}_ms"] for q in (50, 95, 99)]
            print(
                f"{name:<34}{r['p50_ms']:>8.3f}{r['p95_ms']:>8.3f}{r['p99_ms']:>8.3f}"
                + "".join(f"{a:>8.3f}" for a in added)
                + f"  {r.get('lockstep', '-')}  ({r['rps']:.0f} req/s)"
            )
        jit, lab = paced["raw Locust, jittered as labcap"], paced["labcap run (1 process)"]
        if "error" not in jit and "error" not in lab:
            print(
                "labcap over raw Locust with the same jitter (labcap's own per-request work): "
                + ", ".join(
                    f"p{q} {lab[f'p{q}_ms'] - jit[f'p{q}_ms']:+.3f} ms" for q in (50, 95, 99)
                )
            )
        for name in ("labcap run (1 process)", "labcap run, WireHttpUser"):
            r = paced[name]
            if "error" not in r and "error" not in base:
                added = r["p99_ms"] - base["p99_ms"]
                print(f"{name}: added p99 over wrk {added:+.3f} ms (acceptance <= 0.5 ms), "
                      f"lock-step flagged: {r.get('lockstep')}")  # fmt: skip
    return 0


def _median_of(results) -> dict:
    """Per key, the median over the rounds (an error in any round is the result)."""
    import statistics

    results = list(results)
    bad = next((r for r in results if "error" in r), None)
    if bad:
        return bad
    out = {}
    for k, v in results[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = statistics.median(r[k] for r in results)
        else:
            out[k] = v if all(r[k] == v for r in results) else [r[k] for r in results]
    return out


if __name__ == "__main__":
    sys.exit(main())
