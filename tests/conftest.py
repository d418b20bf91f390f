"""Shared fixtures: a recorded run built from known latencies, with real HDR histograms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcap.loadtests.recorder import WindowRecorder
from labcap.model import build_plan, plan_to_dict
from labcap.store import JOURNAL


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def record_run(
    run_dir: Path,
    steps: dict[int, dict[str, list[float]]],
    *,
    slos: list[str],
    failures: dict[int, int] | None = None,
    status: str = "complete",
    step_s: float = 10,
    settle_s: float = 2,
    window_s: float = 4,
    interrupt_at: float | None = None,
) -> Path:
    """Journal a run whose step ``users`` saw exactly the given latencies (ms) per endpoint.

    Requests are spread evenly over each step (settling included), so the
    steady windows hold a known share of them.
    """
    users = tuple(steps)
    plan = build_plan(users, step_s, settle_s=settle_s, window_s=window_s, spawn_rate=10)
    clock = FakeClock()
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / JOURNAL, "w") as journal:
        rec = WindowRecorder(plan, journal, active_users=lambda: 0, clock=clock)
        rec.start()
        for step in plan.steps:
            by_ep = steps[step.users]
            n_fail = (failures or {}).get(step.users, 0)
            events = [(ep, ms, None) for ep, lat in by_ep.items() for ms in lat]
            events += [("api.fail", 1.0, ConnectionError("refused"))] * n_fail
            for i, (ep, ms, exc) in enumerate(events):
                t = step.start_s + step.duration_s * (i + 0.5) / len(events)
                if interrupt_at is not None and t >= interrupt_at:
                    clock.t = 1000.0 + interrupt_at
                    rec.close("interrupted", "SIGINT received")
                    break
                clock.t = 1000.0 + t
                rec.on_request("GET", ep, ms, exception=exc)
            else:
                continue
            break
        else:
            clock.t = 1000.0 + plan.duration_s
            rec.close("complete")
    manifest = {
        "schema_version": "1.0",
        "status": status,
        "status_reasons": [],
        "target": "remote",
        "scenario": {"name": "synthetic"},
        "hosts": {},
        "load": plan_to_dict(plan),
        "slos": slos,
        "environment": {},
        "notes": [],
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


@pytest.fixture
def recorded_run():
    return record_run


@pytest.fixture(scope="session")
def reference_lab(tmp_path_factory):
    """The embedded reference lab, started once per test session (real JupyterHub + MLflow).

    Every test that only needs a running lab shares it; tests of the lab's own life
    (start, stop, refusal, detach) start their own. Skipped where the lab stack is absent.
    """
    from labcap.lab import ReferenceLab
    from tests.support.lab import require_lab_stack

    require_lab_stack()
    lab = ReferenceLab(tmp_path_factory.mktemp("reference-lab"))
    endpoints = lab.start()
    yield endpoints
    lab.stop()
