"""The capacity check: the same short step load on both deployments at once (each on its own
hosts and ports), then the gate between the two runs: new must not be worse than old beyond
the margin. The load writes (hub users, MLflow experiments named ``labcap-*``): run it after
the data check, which `labcap verify` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.planner.gate import (
    INCONCLUSIVE as GATE_INCONCLUSIVE,
)
from labcap.planner.gate import (
    PASS as GATE_PASS,
)
from labcap.planner.gate import (
    REGRESSION,
    GateThresholds,
    compare_runs,
)
from labcap.verify.records import FAIL, INCONCLUSIVE, PASS, SKIPPED, CheckResult, Difference
from labcap.verify.target import Deployment

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CapacitySettings:
    """The short step load each side gets, and the gate's margins."""

    scenario: str = ""  # "" = lab when both hub and MLflow are known, else the one there is
    users: tuple[int, ...] = (2, 4)
    step_duration_s: float = 60.0
    window_s: float = 2.0
    spawn_rate: float = 2.0
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    # (old run, new run) measured before, one deployment after the other: judged, not run
    runs: tuple[Path, Path] | None = None


def pick_scenario(dep: Deployment, wanted: str) -> str:
    if wanted:
        return wanted
    if dep.hub_url and dep.mlflow_url:
        return "lab"
    return "jupyterhub" if dep.hub_url else "mlflow"


def check_capacity(
    old: Deployment,
    new: Deployment,
    settings: CapacitySettings,
    out: Path | None,
    progress: Progress = lambda _m: None,
) -> CheckResult:
    started = time.monotonic()
    if settings.runs is not None:
        progress(f"verify capacity: judging the runs {settings.runs[0]} and {settings.runs[1]}")
        result = capacity_of_measured_runs(old, new, settings)
        return replace(result, elapsed_s=round(time.monotonic() - started, 2))
    assert out is not None
    scenario = pick_scenario(old, settings.scenario)
    if not (old.hub_url or old.mlflow_url) or not (new.hub_url or new.mlflow_url):
        return CheckResult("capacity", SKIPPED, "a deployment has neither hub nor MLflow URL")
    results: dict[str, Any] = {}

    def run_side(dep: Deployment) -> None:
        try:
            results[dep.label] = _run(
                dep,
                scenario,
                settings,
                out / f"capacity-{dep.label}",
                lambda m, d=dep.label: progress(f"verify capacity {d}: {m}"),
            )
        except LabcapError as e:
            results[dep.label] = e

    progress(
        f"verify capacity: {scenario} load, users {settings.users}, "
        f"{settings.step_duration_s:g} s per step, on both deployments at once"
    )
    threads = [threading.Thread(target=run_side, args=(d,), daemon=True) for d in (old, new)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = {k: v for k, v in results.items() if isinstance(v, Exception)}
    if failed:
        text = "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
        critical = "new" in failed and "old" not in failed
        return CheckResult(
            "capacity",
            FAIL if critical else INCONCLUSIVE,
            f"the load run failed ({text})",
            critical=critical,
            elapsed_s=round(time.monotonic() - started, 2),
        )
    result = capacity_from_runs(results["old"], results["new"], settings.thresholds)
    return replace(result, elapsed_s=round(time.monotonic() - started, 2))


def _run(
    dep: Deployment, scenario: str, settings: CapacitySettings, out: Path, progress: Progress
) -> Path:
    from labcap.loadtests.catalog import SCENARIOS
    from labcap.measure.run import RunRequest, execute_run
    from labcap.model import build_plan
    from labcap.slo import parse_slos

    plan = build_plan(
        settings.users,
        settings.step_duration_s,
        settle_s=settings.step_duration_s / 4,
        window_s=settings.window_s,
        spawn_rate=settings.spawn_rate,
    )
    slos = parse_slos(SCENARIOS[scenario].default_slos) if scenario in SCENARIOS else ()
    hosts = {
        k: v
        for k, v in (
            ("jupyterhub", dep.hub_url),
            ("mlflow", dep.mlflow_url),
            ("default", dep.hub_url or dep.mlflow_url),
        )
        if v
    }
    req = RunRequest(
        out=out,
        scenario=scenario,
        hosts=hosts,
        plan=plan,
        slos=slos,
        target="remote",
        overwrite=True,
        hub_password=dep.hub_password,
        notes=(f"labcap verify: {dep.label} deployment",),
    )
    return execute_run(req, progress).path


def capacity_of_measured_runs(
    old: Deployment, new: Deployment, settings: CapacitySettings
) -> CheckResult:
    """``--capacity-runs``: the gate between two runs measured one after the other. Runs
    that were not measured alike (scenario, steps, SLOs) cannot be compared: inconclusive;
    a run whose target is not the deployment's URL is said in the summary."""
    from labcap.reports.compare import comparability_warnings
    from labcap.store import RunDir

    assert settings.runs is not None
    manifests = [RunDir.open(p).read_manifest() for p in settings.runs]
    unlike = comparability_warnings(manifests, statuses=False)  # a partial run: the gate's
    if unlike:
        return CheckResult(
            "capacity",
            INCONCLUSIVE,
            "the two runs were not measured alike (run 1: old, run 2: new): " + "; ".join(unlike),
            details={"runs": {"old": str(settings.runs[0]), "new": str(settings.runs[1])}},
        )
    result = capacity_from_runs(*settings.runs, settings.thresholds)
    elsewhere = [
        f"the {dep.label} run loaded {host}, not {dep.label}'s {url}"
        for dep, m in zip((old, new), manifests, strict=True)
        for host, url in _targets(dep, m.scenario_name, m.hosts)
    ]
    if elsewhere:
        result = replace(result, summary=f"{result.summary}; note: {'; '.join(elsewhere)}")
    return result


def _targets(dep: Deployment, scenario: str, hosts: dict[str, str]) -> list[tuple[str, str]]:
    """(run's host, deployment's URL) pairs that differ, for the services the scenario
    loads (a run of one of them records the other's host as its own)."""
    urls = {"jupyterhub": dep.hub_url, "mlflow": dep.mlflow_url}
    if scenario in urls:
        urls = {scenario: urls[scenario]}
    return [
        (hosts[k], url)
        for k, url in urls.items()
        if url and hosts.get(k) and hosts[k].rstrip("/") != url.rstrip("/")
    ]


def capacity_from_runs(
    old_run: str | Path, new_run: str | Path, thresholds: GateThresholds | None = None
) -> CheckResult:
    """The gate between two finished runs, as a check result."""
    from labcap.planner.capacity import plan_run
    from labcap.reports.wording import capacity_text
    from labcap.store import RunDir

    gate = compare_runs(RunDir.open(old_run), RunDir.open(new_run), thresholds)
    caps, said = {}, {}
    for side, path in (("old", old_run), ("new", new_run)):
        try:
            plan = plan_run(str(path))
        except LabcapError:
            caps[side], said[side] = None, "no capacity figure"
        else:  # "≥ 40 users", "< 2 users", "no capacity figure": never "None" or "0"
            caps[side], said[side] = plan.max_users_at_slo, capacity_text(plan, "")
    details = {
        "gate": gate.to_dict(),
        "max_users_at_slo": caps,
        "runs": {"old": str(old_run), "new": str(new_run)},
    }
    cap_text = f"max users at SLO: old {said['old']}, new {said['new']}"
    if gate.outcome == REGRESSION:
        diffs = tuple(
            Difference(
                "capacity-regression",
                f"step {c.step_index + 1} ({c.users} users) {c.endpoint} {c.metric}",
                _value(c.baseline, c.unit),
                _value(c.current, c.unit),
                c.reason,
            )
            for c in gate.comparisons
            if c.outcome == REGRESSION
        )
        return CheckResult("capacity", FAIL, f"{gate.summary}; {cap_text}", diffs, details)
    if gate.outcome == GATE_INCONCLUSIVE:
        reasons = (
            list(gate.reasons)
            + [
                f"step {c.step_index + 1} {c.endpoint} {c.metric}: {c.reason}"
                for c in gate.comparisons
                if c.outcome == GATE_INCONCLUSIVE
            ][:5]
        )
        return CheckResult(
            "capacity",
            INCONCLUSIVE,
            f"{gate.summary}; {cap_text}; " + "; ".join(reasons),
            (),
            details,
        )
    assert gate.outcome == GATE_PASS
    return CheckResult("capacity", PASS, f"{gate.summary}; {cap_text}", (), details)


def _value(v: float | None, unit: str) -> str | None:
    return None if v is None else f"{v:.4g} {unit}"
