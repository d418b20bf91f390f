"""CPU the NVML GPU collector costs: 1 s interval, for D seconds, with a GPU user running.

Prints the sampler thread's CPU time (time.thread_time inside the thread) and the
whole process's CPU over the same span, minus the process's idle CPU over an equal
span without the collector, each as % of one core. Acceptance: under 1 % at 1 s.
A torch process (tests/gpu/torch_load.py) holds memory and runs matmuls meanwhile,
so each sample also lists a process and resolves its cgroup.

    python bench/gpu_overhead.py [SECONDS] [INTERVAL_S]

Exit 0 when under 1 %, 1 when over, 2 when there is no usable GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from labcap.collectors.gpu import NvmlCollector, NvmlSettings, nvml_unavailable_reason

LOAD = Path(__file__).parents[1] / "tests" / "gpu" / "torch_load.py"
LIMIT_PCT = 1.0


def _cpu_s() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def main(seconds: float = 30.0, interval_s: float = 1.0) -> int:
    import pynvml

    reason = nvml_unavailable_reason(pynvml)
    if reason:
        print(f"gpu_overhead: no usable GPU here: {reason}", file=sys.stderr)
        return 2
    load = subprocess.Popen(
        [sys.executable, str(LOAD), str(seconds * 2 + 30)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if load.stdout.readline().strip() != "ready":
            print("gpu_overhead: the torch load did not start", file=sys.stderr)
            return 2
        c0 = _cpu_s()
        time.sleep(seconds)
        idle_cpu_s = _cpu_s() - c0
        c = NvmlCollector(NvmlSettings(interval_s=interval_s))
        c0, w0 = _cpu_s(), time.monotonic()
        c.start(None)
        time.sleep(seconds)
        c.stop()
        wall_s, proc_cpu_s = time.monotonic() - w0, _cpu_s() - c0
    finally:
        load.stdin.close()
        load.wait(timeout=30)
    samples = c.tables()["gpu_samples"]
    thread_pct = 100 * c.cpu_s / wall_s
    proc_pct = 100 * max(0.0, proc_cpu_s - idle_cpu_s) / wall_s
    worst = max(thread_pct, proc_pct)
    rows = [
        ("interval_s", f"{interval_s:g}"),
        ("wall_s", f"{wall_s:.1f}"),
        ("samples (GPU rows)", str(len(samples))),
        ("process rows", str(len(c.tables()["gpu_processes"]))),
        ("sampler thread CPU s", f"{c.cpu_s:.4f}"),
        ("sampler thread % of one core", f"{thread_pct:.3f}"),
        ("process CPU s (minus idle)", f"{max(0.0, proc_cpu_s - idle_cpu_s):.4f}"),
        ("process % of one core", f"{proc_pct:.3f}"),
        ("ms CPU per sample", f"{1000 * c.cpu_s / max(1, samples['t_unix'].nunique()):.2f}"),
        ("limit %", f"{LIMIT_PCT:g}"),
        ("verdict", "PASS" if worst < LIMIT_PCT else "FAIL"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    out = os.environ.get("LABCAP_GPU_OUT")
    if out:
        Path(out, "overhead.json").write_text(json.dumps(dict(rows), indent=1))
    return 0 if worst < LIMIT_PCT else 1


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]]
    sys.exit(main(*args))
