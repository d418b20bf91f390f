"""Spawn storms on this machine: startup percentiles versus concurrency.

Runs `labcap probe startup` (the library call) with the busybox httpd test
image, ready on its first HTTP answer, and prints the probe's table.

    .venv/bin/python bench/docker_storm.py [CONCURRENCY] [REPEAT] [OUT]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from docker_common import TEST_IMAGE, engine_client

from labcap.measure.probes.docker import StartupProbeSettings, format_table, run_startup_probe
from labcap.units import parse_user_steps


def main(levels: str = "1,4,8,16", repeat: str = "3", out: str | None = None) -> None:
    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="labcap-storm-")) / "run"
    settings = StartupProbeSettings(
        image=TEST_IMAGE,
        concurrency=parse_user_steps(levels),
        repeat=int(repeat),
        port="auto",
        timeout_s=120,
        interval_s=0.5,
    )
    with engine_client() as client:
        result = run_startup_probe(
            settings, target, client=client, progress=lambda m: print(m, file=sys.stderr)
        )
    print(format_table(result.rows))
    for row in result.contention:
        print(f"step {row['step_index'] + 1}: contention signals {row['signals'] or 'none'}")
    print(f"run directory: {result.path} ({result.status})")


if __name__ == "__main__":
    main(*sys.argv[1:4])
