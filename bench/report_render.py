"""How long does the HTML report of a long run take, and how big is it? (A benchmark.)

Builds a synthetic 1-hour run (6 steps of 10 min, 1 s windows, 10 endpoints, real HDR
histograms through the engine's own recorder and finaliser), then times the report.

    python bench/report_render.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from labcap.loadtests.recorder import WindowRecorder
from labcap.measure.run import _finalise
from labcap.model import build_plan, plan_to_dict
from labcap.store import JOURNAL, RunDir


class _Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def build_run(out: Path, endpoints: int = 10) -> None:
    plan = build_plan((10, 20, 40, 80, 160, 320), 600, settle_s=60, window_s=1, spawn_rate=10)
    clock, rng = _Clock(), np.random.default_rng(0)
    with open(out / JOURNAL, "w") as journal:
        rec = WindowRecorder(plan, journal, clock=clock, sync=lambda fd: None)
        rec.start()
        for w in plan.windows:
            clock.t = w.start_s + 0.5
            for e in range(endpoints):
                for ms in rng.lognormal(3 + 0.2 * w.step_index, 0.5, 5):
                    rec.on_request("GET", f"api.e{e}", float(ms))
        clock.t = plan.duration_s
        rec.close("complete")
    manifest = {
        "schema_version": "1.0",
        "status": "running",
        "status_reasons": [],
        "target": "remote",
        "scenario": {"name": "synthetic"},
        "hosts": {},
        "load": plan_to_dict(plan),
        "slos": ["p95_ms=100", "error_pct=1"],
        "environment": {},
        "notes": [],
        "pid": 0,
        "started_at": "synthetic",
    }
    _finalise(RunDir(out), manifest, 0, lambda _msg: None)


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="labcap-bench-report-"))
    t = time.perf_counter()
    build_run(out)
    print(f"synthetic 1-hour run (36,000 window rows) built in {time.perf_counter() - t:.1f} s")
    from labcap.reports.html import render_run_report

    t = time.perf_counter()
    html = render_run_report(RunDir.open(out))
    print(f"report rendered in {time.perf_counter() - t:.2f} s, {len(html) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
