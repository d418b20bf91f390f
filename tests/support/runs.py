"""Run directories built from seeded numbers, written as the recorder writes them.

``synthetic_run`` gives lognormal latencies from a seeded RNG per step and
endpoint, with real HDR histograms in the windows table: the gate's and the
planner's tests (and the golden CLI outputs) read them like any recorded run.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from labcap.histograms import new_histogram
from labcap.model import build_plan, plan_to_dict
from labcap.store import FAILURE_COLUMNS, WINDOW_COLUMNS

ENDPOINTS = ("hub.login", "mlflow.search")
USERS = (5, 10)


def synthetic_run(
    run_dir: Path,
    seed: int,
    *,
    scale: float | dict[str, float] = 1.0,
    requests: int = 1400,
    error_pct: float = 0.0,
    users: tuple[int, ...] = USERS,
    endpoints: tuple[str, ...] = ENDPOINTS,
    median_ms: float = 20.0,
    sigma: float = 0.3,
    step_s: float = 7,
    window_s: float = 1,
    status: str = "complete",
    stop_at_s: float | None = None,
    scenario: str = "synthetic",
    slos: tuple[str, ...] = ("p95_ms=500", "error_pct=1"),
    stable: bool = False,
) -> Path:
    """A run directory whose requests are lognormal latencies from a seeded RNG.

    Each step × endpoint gets ``requests`` requests spread evenly over the step
    (settling included), ``error_pct`` of them failed; latencies are multiplied
    by ``scale`` (one factor, or one per endpoint). Windows starting at or after
    ``stop_at_s`` are missing, as in an interrupted run. ``stable`` draws from
    ``StableDraws`` (the same numbers on every numpy and Python version) instead
    of numpy's generator: for golden files.
    """
    rng = StableDraws(seed) if stable else np.random.default_rng(seed)
    plan = build_plan(users, step_s, settle_s=1, window_s=window_s, spawn_rate=10)
    rows = []
    for step in plan.steps:
        windows = [w for w in plan.windows if w.step_index == step.index]
        for endpoint in endpoints:
            factor = scale[endpoint] if isinstance(scale, dict) else scale
            ms = rng.lognormal(np.log(median_ms), sigma, requests) * factor
            failed = rng.random(requests) < error_pct / 100
            t = step.start_s + step.duration_s * (np.arange(requests) + 0.5) / requests
            for w in windows:
                if stop_at_s is not None and w.start_s >= stop_at_s:
                    continue
                inside = (t >= w.start_s) & (t < w.end_s)
                rows.append(_window_row(w, step.users, endpoint, ms[inside], failed[inside]))
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=WINDOW_COLUMNS).to_parquet(run_dir / "windows.parquet")
    pd.DataFrame([], columns=FAILURE_COLUMNS).to_parquet(run_dir / "failures.parquet")
    manifest = {
        "schema_version": "1.0",
        "status": status,
        "status_reasons": [] if status == "complete" else ["SIGINT received"],
        "target": "remote",
        "scenario": {"name": scenario},
        "hosts": {},
        "load": plan_to_dict(plan),
        "slos": list(slos),
        "environment": {},
        "notes": [],
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


class StableDraws:
    """The two draws ``synthetic_run`` needs, from ``random.Random.random`` only.

    Python guarantees that method's sequence for a given integer seed across
    versions; numpy's generators and ``random.gauss`` make no such promise.
    """

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._normal = NormalDist()

    def random(self, n: int) -> np.ndarray:
        return np.array([self._random.random() for _ in range(n)])

    def lognormal(self, mean: float, sigma: float, n: int) -> np.ndarray:
        u = np.clip(self.random(n), 1e-9, 1 - 1e-9)
        return np.array([math.exp(mean + sigma * self._normal.inv_cdf(float(x))) for x in u])


def _window_row(w, users, endpoint, ms, failed) -> dict:
    ok_us = np.maximum(np.round(ms[~failed] * 1000), 1).astype(int)
    hist = new_histogram()
    for v in ok_us.tolist():
        hist.record_value(v)
    ranked = np.sort(ok_us)
    # summary columns as the recorder writes them (rank rule of HdrHistogram), from the sample
    pct = {f"p{p}_us": _rank(ranked, p) for p in (50, 90, 95, 99)}
    return {
        "window_index": w.index,
        "step_index": w.step_index,
        "start_s": w.start_s,
        "end_s": w.end_s,
        "settling": w.settling,
        "target_users": users,
        "active_users": users,
        "endpoint": endpoint,
        "method": "GET",
        "requests": int(len(ms)),
        "failures": int(failed.sum()),
        "mean_us": float(ok_us.mean()) if len(ok_us) else None,
        **pct,
        "max_us": float(ranked[-1]) if len(ranked) else None,
        "hdr": hist.encode().decode("ascii") if len(ok_us) else "",
    }


def _rank(ranked: np.ndarray, percentile: float) -> float | None:
    if not len(ranked):
        return None
    return float(ranked[max(int(percentile * len(ranked) / 100 + 0.5), 1) - 1])
