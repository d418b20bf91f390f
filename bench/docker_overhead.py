"""CPU the Docker collector costs: N idle containers, 1 s interval, for D seconds.

Prints the collector's CPU time as % of one core (acceptance: under 2 % with
20 containers at 1 s). The process does nothing else while it measures; the
same measurement without the collector is subtracted.

    .venv/bin/python bench/docker_overhead.py [CONTAINERS] [SECONDS]
"""

from __future__ import annotations

import sys
import time

import psutil
from docker_common import TEST_IMAGE, engine_client

from labcap.collectors.docker import DockerCollector, DockerSettings


def _cpu_s() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def _idle_cost(seconds: float) -> float:
    c0 = _cpu_s()
    time.sleep(seconds)
    return _cpu_s() - c0


def main(containers: int = 20, seconds: int = 30) -> None:
    with engine_client() as client:
        ids = []
        for _ in range(containers):
            cid = client.api.create_container(
                TEST_IMAGE,
                command=["sleep", "3600"],
                healthcheck={"test": ["NONE"]},  # measure the collector, not health execs
                labels={"labcap.bench": "overhead"},
                host_config=client.api.create_host_config(network_mode="host"),
            )["Id"]
            client.api.start(cid)
            ids.append(cid)
        try:
            baseline = _idle_cost(seconds)
            col = DockerCollector(
                DockerSettings(labels=("labcap.bench=overhead",), interval_s=1.0), client=client
            )
            c0, t0 = _cpu_s(), time.monotonic()
            col.start(None)
            time.sleep(seconds)
            col.stop()
            cpu, wall = _cpu_s() - c0 - baseline, time.monotonic() - t0
            samples = col.tables()["container_samples"]
            sources = sorted(set(samples["source"]))
            print(
                f"{containers} containers, interval 1 s, {wall:.1f} s: collector CPU "
                f"{cpu:.3f} s = {100 * cpu / wall:.2f} % of one core "
                f"({len(samples)} samples from {', '.join(sources)}; "
                f"start/stop included, idle baseline {baseline:.3f} s subtracted)"
            )
        finally:
            for cid in ids:
                client.api.remove_container(cid, force=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
