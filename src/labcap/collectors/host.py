"""Host resources while the load runs: CPU (incl. I/O wait), memory, load average.

The cheapest collector and always available on Linux: it is what shows that
the embedded lab and the load generator share one machine's cores.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from labcap.collectors.base import CollectorStatus, RunContext


@dataclass(frozen=True)
class HostSettings:
    interval_s: float = 1.0  # seconds between samples


@dataclass(frozen=True)
class HostSample:
    t_unix: float
    cpu_pct: float
    iowait_pct: float
    mem_used_bytes: int
    mem_total_bytes: int
    load1: float
    source: str = "psutil"  # psutil: this machine; prometheus: the lab's node-exporter
    instance: str = ""  # the node-exporter's instance label (prometheus rows)


class HostCollector:
    name = "host"

    def __init__(self, settings: HostSettings | None = None) -> None:
        self.settings = settings or HostSettings()
        self._samples: list[HostSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warnings: list[str] = []

    def start(self, ctx: RunContext) -> None:
        import psutil

        psutil.cpu_times_percent(interval=None)  # prime: the first call has no baseline
        self._thread = threading.Thread(target=self._loop, name="labcap-host", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import os

        import psutil

        while not self._stop.wait(self.settings.interval_s):
            try:
                cpu = psutil.cpu_times_percent(interval=None)
                mem = psutil.virtual_memory()
                self._samples.append(
                    HostSample(
                        t_unix=time.time(),
                        cpu_pct=round(100.0 - cpu.idle, 2),
                        iowait_pct=round(getattr(cpu, "iowait", 0.0), 2),
                        mem_used_bytes=mem.total - mem.available,
                        mem_total_bytes=mem.total,
                        load1=os.getloadavg()[0],
                    )
                )
            except Exception as e:  # a sampling error is a gap, not a crashed run
                self._warnings.append(f"sample failed: {type(e).__name__}: {e}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def tables(self) -> dict[str, Any]:
        import pandas as pd

        cols = list(HostSample.__dataclass_fields__)
        return {"host_samples": pd.DataFrame([s.__dict__ for s in self._samples], columns=cols)}

    def status(self) -> CollectorStatus:
        return CollectorStatus(self.name, True, "", tuple(self._warnings[:20]))
