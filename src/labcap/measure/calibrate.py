"""Calibration: the load generator's own latency floor and throughput ceiling on this machine.

labcap starts a trivial loopback target (it answers at once) and drives it with
the HTTP client its scenarios use: at a fixed, modest rate the response times
are what the generator itself (and loopback) add to any measurement, its
*floor*; flat out, the requests per second one generator process can send is
its *ceiling*. ``labcap run`` calibrates first and keeps the result in the
manifest; the report shows the floor beside measured latencies, and the planner
does not call an SLO breach that is smaller than the floor (within the
generator's own noise).

The target and the generator are two subprocesses (Locust monkey-patches the
process that imports it); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from labcap.errors import LabcapError

FLOOR_S = 2.0
CEILING_S = 1.0
USERS = 20
RATE_RPS = 200.0
TIMEOUT_S = 60.0

METHOD = (
    "a trivial loopback target started by labcap (asyncio, answers at once) driven by the "
    "scenarios' HTTP client (Locust HttpUser) in one process: floor = response-time "
    "percentiles (HDR, µs) at {rate:g} req/s from {users} jittered users over {floor:g} s; "
    "ceiling = req/s with no wait over {ceiling:g} s, and per core from the process's CPU time; "
    "wire floor = the floor of labcap's WireHttpUser (timed to the kernel's receipt of each "
    "response) measured alike, for locustfiles written on it"
)

# Which floor percentile bounds the generator's noise for each SLO metric.


@contextlib.contextmanager
def trivial_target() -> Iterator[str]:
    """The calibration target on 127.0.0.1; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "labcap.loadtests.floor", "serve"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.strip().isdigit():
            raise LabcapError("calibration: the loopback target did not start")
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        proc.kill()
        proc.wait()


def calibrate(
    *,
    floor_s: float = FLOOR_S,
    ceiling_s: float = CEILING_S,
    users: int = USERS,
    rate_rps: float = RATE_RPS,
) -> dict[str, Any]:
    """Measure the generator's floor and ceiling here; a dict for the manifest and --json."""
    started = time.monotonic()
    with trivial_target() as url:
        cmd = [
            sys.executable,
            "-m",
            "labcap.loadtests.floor",
            "measure",
            url,
            str(floor_s),
            str(ceiling_s),
            str(users),
            str(rate_rps),
        ]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        except subprocess.TimeoutExpired:
            raise LabcapError(
                f"calibration did not finish within {TIMEOUT_S:g}s (machine overloaded?)"
            ) from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise LabcapError(f"calibration failed: {tail}")
    result = json.loads(lines[-1])
    if not result.get("floor_requests"):
        raise LabcapError("calibration failed: no request reached the loopback target")
    result["duration_s"] = round(time.monotonic() - started, 2)
    result["cpu_count"] = os.cpu_count()
    result["method"] = METHOD.format(rate=rate_rps, users=users, floor=floor_s, ceiling=ceiling_s)
    return result


def describe(cal: dict[str, Any]) -> str:
    """Two or three lines for humans."""
    text = (
        f"generator floor (added latency): p50 {cal['floor_p50_ms']:.3f} ms, "
        f"p95 {cal['floor_p95_ms']:.3f} ms, p99 {cal['floor_p99_ms']:.3f} ms "
        f"at {cal['floor_rate_rps']:g} req/s, {cal['floor_users']} users\n"
    )
    if cal.get("wire_floor_p50_ms") is not None:  # absent in older runs' manifests
        text += (
            f"WireHttpUser floor: p50 {cal['wire_floor_p50_ms']:.3f} ms, "
            f"p95 {cal['wire_floor_p95_ms']:.3f} ms, p99 {cal['wire_floor_p99_ms']:.3f} ms "
            "(timed to the kernel's receipt of each response)\n"
        )
    return text + (
        f"generator ceiling: {cal['ceiling_rps']:g} req/s in one process at "
        f"{cal['ceiling_cpu_pct']:g} % of a core ({cal['ceiling_rps_per_core']} req/s per core)"
    )
