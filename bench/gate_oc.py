"""The CI gate's operating characteristic on this machine, from real runs (not a test).

Four loopback targets with a known service time (tests/support/service_server.py:
lognormal, median --service-ms): A and A2 identical, B10 and B20 with the candidate's
configuration change (every service time +10 % / +20 %). Real `labcap run`s against
them, then the gate in each mode:

* paired:   `labcap run --host A --candidate-host X` (X = A2, B10, B20), `labcap gate RUN`;
* single:   a stored baseline run of A, later a run of X: `labcap gate BASE CUR`
            (every ordered pair baseline-before-current: pairs share runs);
* history:  the 5 runs of A before a run of X as the baseline history:
            `labcap gate HISTORY_DIR CUR`.

Runs are interleaved in a shuffled round-robin, so slow drift of the machine falls on
every condition alike; scheduling stops at --budget-s. Usage:

    PYTHONPATH=src python bench/gate_oc.py --budget-s 1380 --out /tmp/gate-oc

Prints a Markdown table (docs/ci-gate.md) and writes results.json to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "support" / "service_server.py"
LOCUSTFILE = ROOT / "tests" / "support" / "locustfile_target.py"
CONDITIONS = {"same": 0.0, "+10%": 10.0, "+20%": 20.0}
MARGINS = ("10%", "5%")


def start_server(add_pct: float, service_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--service-ms", str(service_ms), "--add-pct", str(add_pct)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def labcap_run(out: Path, host: str, candidate: str | None, args: argparse.Namespace) -> float:
    users = str(args.users * 2 if candidate else args.users)
    cmd = [
        sys.executable, "-m", "labcap.cli", "run", "--host", host,
        "--scenario", str(LOCUSTFILE), "--users", users,
        "--step-duration", f"{args.settle_s + args.steady_s:g}s", "--settle", f"{args.settle_s:g}s",
        "--window", f"{args.window_s:g}s", "--spawn-rate", "50", "--no-calibrate",
        "--out", str(out),
    ]  # fmt: skip
    if candidate:
        cmd[6:6] = ["--candidate-host", candidate]
    env = dict(os.environ, LABCAP_TEST_PATH="/work")
    started = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        print(f"run failed ({r.returncode}): {r.stderr[-500:]}", file=sys.stderr)
    return time.monotonic() - started


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=1380)
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="gate-oc-")))
    ap.add_argument("--service-ms", type=float, default=100.0)
    ap.add_argument("--users", type=int, default=4, help="users per side")
    ap.add_argument("--settle-s", type=float, default=2.0)
    ap.add_argument("--steady-s", type=float, default=18.0)
    ap.add_argument("--window-s", type=float, default=1.0)
    ap.add_argument("--paired", type=int, default=8, help="paired runs per condition")
    ap.add_argument("--baselines", type=int, default=5, help="single runs of A")
    ap.add_argument("--singles", type=int, default=2, help="single runs per condition")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    servers = {}
    log: list[dict[str, object]] = []
    started = time.monotonic()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly, keep the runs
    try:
        for name, pct in (("A", 0.0), ("A2", 0.0), ("B10", 10.0), ("B20", 20.0)):
            servers[name] = start_server(pct, args.service_ms)
        url = {k: v[1] for k, v in servers.items()}
        target = {"same": "A2", "+10%": "B10", "+20%": "B20"}
        tasks = [("paired", c) for c in CONDITIONS for _ in range(args.paired)]
        tasks += [("single", "base")] * args.baselines
        tasks += [("single", c) for c in CONDITIONS for _ in range(args.singles)]
        rng = random.Random(args.seed)
        rng.shuffle(tasks)
        # the first 5 single runs are baselines, so history and single modes have a baseline
        # before any current run; the rest stays shuffled, so a budget cut is balanced
        bases = [t for t in tasks if t == ("single", "base")]
        rest = [t for t in tasks if t != ("single", "base")]
        tasks = bases[:5] + rest + bases[5:]
        started = time.monotonic()
        for i, (mode, cond) in enumerate(tasks):
            if time.monotonic() - started > args.budget_s:
                print(f"budget reached after {i} of {len(tasks)} runs", file=sys.stderr)
                break
            out = args.out / f"{i:03d}-{mode}-{cond.replace('%', 'pct').replace('+', 'p')}"
            if mode == "paired":
                wall = labcap_run(out, url["A"], url[target[cond]], args)
            else:
                host = url["A"] if cond == "base" else url[target[cond]]
                wall = labcap_run(out, host, None, args)
            log.append({"i": i, "mode": mode, "cond": cond, "dir": str(out), "wall_s": wall})
            print(f"[{time.monotonic() - started:6.0f}s] run {i} {mode} {cond}: {wall:.1f}s",
                  file=sys.stderr, flush=True)  # fmt: skip
        elapsed = time.monotonic() - started
    except KeyboardInterrupt:
        print("interrupted: evaluating the runs made so far", file=sys.stderr)
        elapsed = time.monotonic() - started
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()
    results = evaluate(log, args)
    results["elapsed_s"] = round(elapsed, 1)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


def evaluate(log: list[dict[str, object]], args: argparse.Namespace) -> dict[str, object]:
    from labcap.errors import LabcapError
    from labcap.planner.gate import compare_paths, thresholds_from_options
    from labcap.planner.gate_history import gate_history
    from labcap.planner.gate_paired import gate_paired

    load_s = args.settle_s + args.steady_s
    rows: dict[str, dict[str, object]] = {}
    for margin in MARGINS:
        th = thresholds_from_options([f"p95={margin}"])
        for mode in ("paired", "history", "single"):
            for cond in CONDITIONS:
                outcomes: list[str] = []
                if mode == "paired":
                    for e in log:
                        if e["mode"] == "paired" and e["cond"] == cond:
                            outcomes.append(_outcome(lambda e=e, th=th: gate_paired(e["dir"], th)))
                else:
                    for j, cur in enumerate(log):
                        if cur["mode"] != "single" or cur["cond"] != cond:
                            continue
                        bases = [
                            b for b in log[:j] if b["mode"] == "single" and b["cond"] == "base"
                        ]
                        if mode == "single":
                            for b in bases:
                                outcomes.append(
                                    _outcome(
                                        lambda b=b, c=cur, th=th: compare_paths(
                                            b["dir"], c["dir"], th
                                        )
                                    )
                                )
                        elif len(bases) >= 5:
                            outcomes.append(
                                _outcome(
                                    lambda c=cur, h=bases[-5:], th=th: _history(
                                        h, c, th, gate_history
                                    )
                                )
                            )
                n = len(outcomes)
                count = {
                    o: outcomes.count(o) for o in ("pass", "regression", "inconclusive", "error")
                }
                load = load_s  # per build: one run; single/history also keep stored runs
                rows[f"{margin}|{mode}|{cond}"] = {
                    "margin": margin, "mode": mode, "cond": cond, "n": n, **count,
                    "regression_ci95": wilson(count["regression"], n),
                    "inconclusive_ci95": wilson(count["inconclusive"], n),
                    "load_s_per_decision": load,
                }  # fmt: skip
    del LabcapError
    return {"rows": rows, "runs": log, "args": {k: str(v) for k, v in vars(args).items()}}


def _history(history: list[dict[str, object]], cur: dict[str, object], th: object, gate: object):
    tmp = Path(tempfile.mkdtemp(prefix="history-"))
    try:
        for b in history:
            (tmp / Path(str(b["dir"])).name).symlink_to(Path(str(b["dir"])).resolve())
        return gate(tmp, cur["dir"], th)  # type: ignore[operator]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _outcome(fn: object) -> str:
    from labcap.errors import LabcapError

    try:
        return str(fn().outcome)  # type: ignore[operator]
    except LabcapError as e:
        print(f"gate error: {e}", file=sys.stderr)
        return "error"


def table(results: dict[str, object]) -> str:
    lines = [
        "| margin | mode | target | decisions | pass | regression | inconclusive | "
        "regression rate (95 % CI) | load per decision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"].values():  # type: ignore[union-attr]
        n = r["n"]
        rate = f"{r['regression'] / n:.0%}" if n else "n/a"
        lo, hi = r["regression_ci95"]
        lines.append(
            f"| {r['margin']} | {r['mode']} | {r['cond']} | {n} | {r['pass']} | "
            f"{r['regression']} | {r['inconclusive']} | {rate} ({lo:.0%}–{hi:.0%}) | "
            f"{r['load_s_per_decision']:g} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
