"""Adaptive capacity search: ``labcap run --users auto --max-users N``.

Instead of a fixed ladder of user counts, probe one count at a time: grow
geometrically (x ``factor``, or x ``factor``² while a probe meets every SLO by a
wide margin) while the SLOs hold, then narrow the bracket between the last
passing and the first failing count until the two are within ``resolution`` of
each other. The probes run in one load engine, one plan step each (settling,
then steady windows), the engine choosing each step's users when it begins
(``SearchController``), so the deployment moves from count to count as in a
ladder instead of starting cold.

A probe is held only until its verdict is clear. One whose steady windows break
an SLO by ``clear_fail_ratio`` (two in a row, or one by 3x) ends there: more of it
cannot make it a pass. So does one whose steady data so far shows, by an exact
binomial test at ``fail_confidence``, that an SLO is broken: for ``p95_ms=T``, more
requests above T than a true 5 % would give but once in 1,000 (the test runs once a
window, so a probe that truly meets its SLO has a few such chances; ``max_ms`` needs
only one request above T, which no further data can undo). One whose steady data so
far meets every SLO within 1/``clear_fail_ratio`` of its limit, over at least
``min_pass_requests`` requests, ends too: it is a pass by a wide margin. Probes near
an SLO run their full length; that is where the answer is decided.

Narrowing the bracket uses the operational laws of a closed system (each user
waits for an answer, then thinks): by Little's law N = X (R + Z), so the highest
passing probe gives the users' cycle time C = N / X, and a saturated probe gives
the throughput ceiling X_max. The knee lies near N* = X_max C (the asymptotic
bound of Denning and Buzen's operational analysis). The next count is that
estimate when it falls inside the bracket, a count just above the passing one when
the estimate says the knee is already there (one resolution step up: a probe there
either closes the bracket or moves it up by a full step), and the midpoint otherwise, so a
wrong estimate costs a probe, never the answer.

The run directory then holds the probes as one step ladder sorted by users (so
``labcap plan`` and ``labcap report`` read it as any run), and its manifest's
``search`` section records every probe in the order it ran: users, verdict,
whether it stopped early and why, p95, req/s, seconds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.measure.run import Progress, RunRequest, RunResult, execute_run
from labcap.model import build_plan, plan_from_dict, plan_to_dict
from labcap.planner.capacity import STEPS_TABLE, plan_capacity, step_statistics, steps_frame
from labcap.planner.search_controller import METHOD, SearchSettings, max_probes
from labcap.store import FAILURES, WINDOWS, RunDir, atomic_write_parquet
from labcap.validity import worst


def search_capacity(
    base: RunRequest,
    settings: SearchSettings,
    *,
    step_s: float,
    settle_s: float,
    window_s: float,
    spawn_rate: float,
    progress: Progress,
) -> RunResult:
    """Probe user counts adaptively in one load engine; leave ``base.out`` as a run of the
    probes sorted by users, with the search path in its manifest."""
    if settings.max_users < 1:
        raise LabcapError("--max-users must be at least 1")
    n = max_probes(settings)
    # placeholder users: the engine decides each step's count while it runs
    plan = build_plan(
        (settings.first(),) * n, step_s, settle_s=settle_s, window_s=window_s,
        spawn_rate=spawn_rate,
    )  # fmt: skip
    started = time.monotonic()
    req = dataclasses.replace(base, plan=plan, search=dataclasses.asdict(settings))
    result = execute_run(req, progress)
    probes_file = base.out / "probes.json"
    if result.interrupted or not probes_file.is_file():
        return result
    probes = json.loads(probes_file.read_text())
    probes_file.unlink()
    return _assemble(base.out, result, probes, settings, time.monotonic() - started, progress)


def _to_ladder(
    frame: Any, place: dict[int, int], per_step: int, missing: int | None = None
) -> tuple[Any, Any]:
    """Renumber one table's step_index from the order the probes ran to their place in the
    sorted ladder (window_index moves with it, per_step windows a step); a step with no
    place becomes ``missing`` (None: NaN). Returns the old and new step numbers."""
    old_step = frame["step_index"].astype(int)
    new_step = old_step.map(place if missing is None else lambda i: place.get(i, missing))
    if "window_index" in frame.columns:
        frame["window_index"] = frame["window_index"] + (new_step - old_step) * per_step
    frame["step_index"] = new_step
    return old_step, new_step


def ladder_windows(indexes: list[int], place: dict[int, int], per_step: int) -> list[int]:
    """Engine window numbers as the ladder's (as ``_to_ladder`` moves the tables' rows),
    sorted; a window of a step no probe ran is dropped."""
    return sorted(
        i + (place[i // per_step] - i // per_step) * per_step
        for i in indexes
        if i // per_step in place
    )


def _renumber_steps(out: Path, place: dict[int, int], per_step: int, skip: set[str]) -> None:
    """Every other table with a step_index (collector samples, send records): the probe's
    place in the sorted ladder, as for the windows."""
    import pandas as pd

    for path in sorted(out.glob("*.parquet")):
        if path.name in skip:
            continue
        frame = pd.read_parquet(path)
        if "step_index" not in frame.columns or not len(frame):
            continue
        _to_ladder(frame, place, per_step, missing=-1)  # -1: before the first probe
        atomic_write_parquet(path, frame)


def _assemble(
    out: Path,
    result: RunResult,
    probes: list[dict[str, Any]],
    settings: SearchSettings,
    wall_s: float,
    progress: Progress,
) -> RunResult:
    """The probes as one run, steps sorted by users; the search path in the manifest.

    The engine ran probe i as the plan's step i; here each probe's windows move to the
    place its user count takes in a ladder sorted by users, so the planner and the report
    read the run as any other. Collector tables keep the run's own timeline.
    """

    run = RunDir.open(out)
    probes = [{k: v for k, v in p.items() if k != "started_s"} for p in probes if p.get("verdict")]
    if not probes:
        return result
    manifest = dict(run.manifest)
    old = plan_from_dict(manifest["load"])
    order = sorted(range(len(probes)), key=lambda i: probes[i]["users"])
    plan = build_plan(
        tuple(probes[i]["users"] for i in order), old.steps[0].duration_s,
        settle_s=old.steps[0].settle_s, window_s=old.window_s, spawn_rate=old.spawn_rate,
    )  # fmt: skip
    per_step = len([w for w in plan.windows if w.step_index == 0])
    windows, failures = run.windows().copy(), run.failures().copy()
    place = {i: j for j, i in enumerate(order)}  # probe (old step) -> ladder step
    for frame in (windows, failures):
        if not len(frame):
            continue
        old_step, new_step = _to_ladder(frame, place, per_step)
        if "start_s" in frame:
            shift = new_step.map(lambda j: plan.steps[j].start_s) - old_step.map(
                lambda i: old.steps[i].start_s
            )
            frame["start_s"] = frame["start_s"] + shift
            frame["end_s"] = frame["end_s"] + shift
    windows = windows[windows["step_index"].notna()].sort_values(["window_index", "endpoint"])
    lockstep = manifest.get("lockstep")
    if isinstance(lockstep, dict) and lockstep.get("flagged_window_indexes"):
        # the engine's window numbers, like the tables': the probe's place in the ladder
        lockstep["flagged_window_indexes"] = ladder_windows(
            lockstep["flagged_window_indexes"], place, per_step
        )
    manifest["load"] = plan_to_dict(plan)
    # the engine's plan had a step for every probe the search might take; the ones it did
    # not need are not missing
    reasons = [r for r in manifest.get("status_reasons", []) if "planned steps have" not in r]
    if manifest.get("status") == "partial" and not reasons:
        manifest["status"] = "complete"
    manifest["status_reasons"] = reasons
    validity = manifest.get("validity")
    if isinstance(validity, dict) and isinstance(validity.get("findings"), list):
        # (validity.on_read re-applies recorded findings: a stale one would make it partial)
        found = [f for f in validity["findings"] if f.get("check") != "missing-steps"]
        status = worst("complete", *(f.get("severity") for f in found))
        manifest["validity"] = {**validity, "findings": found, "status": status}
    atomic_write_parquet(out / WINDOWS, windows.reset_index(drop=True))
    atomic_write_parquet(out / FAILURES, failures.reset_index(drop=True))
    _renumber_steps(out, place, per_step, skip={WINDOWS, FAILURES, f"{STEPS_TABLE}.parquet"})
    atomic_write_parquet(
        out / f"{STEPS_TABLE}.parquet", steps_frame(step_statistics(windows, plan))
    )
    passing = [p["users"] for p in probes if p["verdict"] == "pass"]
    failing = [p["users"] for p in probes if p["verdict"] == "fail"]
    manifest["search"] = {
        "method": METHOD,
        "settings": dataclasses.asdict(settings),
        "probes": probes,
        "max_users_at_slo": max(passing) if passing else 0,
        "first_failing_users": min(failing) if failing else None,
        "wall_s": round(wall_s, 2),
    }
    manifest["notes"] = list(manifest.get("notes", [])) + [
        "steps are the adaptive search's probes sorted by users; they ran in the order of "
        "search.probes (collector tables keep that timeline in t_s; their step_index is the "
        "ladder's, like the windows')"
    ]
    RunDir(out).write_manifest(manifest)
    by_users = {s.users: s for s in plan_capacity(RunDir.open(out)).steps}
    for p in probes:
        st = by_users.get(p["users"])
        p.update(p95_ms=st.p95_ms if st else None, error_pct=st.error_pct if st else 0.0)
        if p.get("rps") is None:
            p["rps"] = st.rps if st else 0.0
    RunDir(out).write_manifest(manifest)
    s = manifest["search"]
    failing = s["first_failing_users"]
    band = (
        f"first failing {failing}"
        if failing is not None
        else f"no probe failed up to --max-users {settings.max_users}"
    )
    progress(
        f"search done in {wall_s:.0f}s over {len(probes)} probes: "
        f"max_users_at_slo {s['max_users_at_slo']}, {band}; "
        f"run {manifest['status']}" + (f" ({'; '.join(reasons)})" if reasons else "")
    )
    return RunResult(out, manifest["status"], tuple(reasons))
