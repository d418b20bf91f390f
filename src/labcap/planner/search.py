"""Adaptive capacity search: ``labcap run --users auto --max-users N``.

Instead of a fixed ladder of user counts, probe one count at a time: grow
geometrically (x ``factor``) while the SLOs hold, then bisect between the last
passing and the first failing count until the two are within ``resolution`` of
each other. Each probe is a full one-step run (its own settling period, then
steady windows) in ``OUT/probes/NN-Uu``; a probe whose steady window clearly
breaks an SLO (by ``clear_fail_ratio``) is stopped there, since more of it
cannot turn it into a pass.

The run directory ``OUT`` then holds the probes as one step ladder sorted by
users (so ``labcap plan`` and ``labcap report`` read it as any run), and its
manifest's ``search`` section records every probe in the order it ran: users,
verdict, p95, req/s, why it stopped, seconds it took.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.model import Slo, build_plan, plan_to_dict
from labcap.runner import Progress, RunRequest, RunResult, execute_run

METHOD = (
    "adaptive: start at start_users, multiply by factor while every SLO holds, then bisect "
    "between the last passing and first failing user count until they are within resolution "
    "(relative) of each other; each probe is one step (settling, then steady windows); a "
    "probe is stopped early when a steady window breaks an SLO by clear_fail_ratio or more"
)


@dataclass(frozen=True)
class SearchSettings:
    max_users: int
    start_users: int | None = None  # default: max_users / 8, at least 1
    factor: float = 2.0
    resolution: float = 0.10
    clear_fail_ratio: float = 1.5
    min_window_requests: int = 20  # error_pct of a window with fewer is not judged early

    def first(self) -> int:
        return max(1, min(self.max_users, self.start_users or self.max_users // 8))


@dataclass(frozen=True)
class Probe:
    order: int
    users: int
    verdict: str  # pass | fail
    stopped_early: str
    p95_ms: float | None
    rps: float
    error_pct: float
    wall_s: float
    path: str


def next_users(settings: SearchSettings, passed: int | None, failed: int | None) -> int | None:
    """The next user count to probe, or None when the search is done."""
    if failed is None:
        if passed is None:
            return settings.first()
        if passed >= settings.max_users:
            return None
        return min(settings.max_users, max(passed + 1, math.ceil(passed * settings.factor)))
    low = passed or 0
    if failed - low <= max(1, settings.resolution * low):
        return None
    return (low + failed) // 2 if failed - low > 1 else None


class ClearFailWatch:
    """Reads new journal lines; a reason when a steady window clearly breaks an SLO."""

    def __init__(self, slos: tuple[Slo, ...], ratio: float, min_requests: int) -> None:
        self.slos = slos
        self.ratio = ratio
        self.min_requests = min_requests
        self.offset = 0
        self.errors: dict[int, list[int]] = {}

    def __call__(self, journal: Path) -> str | None:
        try:
            with open(journal, encoding="utf-8") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return None
        end = chunk.rfind("\n")
        if end < 0:
            return None
        self.offset += len(chunk[: end + 1].encode("utf-8"))
        for line in chunk[: end + 1].splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("kind") != "window" or r.get("settling"):
                continue
            why = self._judge(r)
            if why:
                return why
        return None

    def _judge(self, r: dict[str, Any]) -> str | None:
        counts = self.errors.setdefault(r["window_index"], [0, 0])
        counts[0] += r["requests"]
        counts[1] += r["failures"]
        for slo in self.slos:
            if slo.metric == "error_pct":
                n, bad = counts
                pct = 100 * bad / n if n else 0.0
                if n >= self.min_requests and pct > max(slo.threshold * self.ratio, 1.0):
                    return f"window {r['window_index']}: {pct:.1f} % failed ({slo.expression})"
                continue
            if slo.endpoint not in (None, r["endpoint"]):
                continue
            value = r.get(slo.metric.replace("_ms", "_us"))
            if value is not None and value / 1000 > slo.threshold * self.ratio:
                return (
                    f"window {r['window_index']}: {r['endpoint']} {slo.metric} "
                    f"{value / 1000:.0f} ms, over {self.ratio:g}x its SLO ({slo.expression})"
                )
        return None


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
    """Probe user counts adaptively; leave ``base.out`` as a run of the probes, by users."""
    from labcap.planner.capacity import plan_run
    from labcap.store import prepare_run_dir

    if settings.max_users < 1:
        raise LabcapError("--max-users must be at least 1")
    prepare_run_dir(base.out, overwrite=base.overwrite)
    probes_dir = base.out / "probes"
    if base.overwrite and probes_dir.is_dir():
        import shutil

        shutil.rmtree(probes_dir)  # an earlier search's probes
    probes: list[Probe] = []
    passed: int | None = None
    failed: int | None = None
    started = time.monotonic()
    while (users := next_users(settings, passed, failed)) is not None:
        out = probes_dir / f"{len(probes) + 1:02d}-{users}u"
        plan = build_plan(
            (users,), step_s, settle_s=settle_s, window_s=window_s, spawn_rate=spawn_rate
        )
        watch = ClearFailWatch(base.slos, settings.clear_fail_ratio, settings.min_window_requests)
        stopped: list[str] = []

        def watcher(journal: Path, watch: ClearFailWatch = watch, stopped: list = stopped) -> Any:
            why = watch(journal)
            if why:
                stopped.append(why)
            return why

        progress(f"search probe {len(probes) + 1}: {users} users")
        t = time.monotonic()
        req = dataclasses.replace(base, out=out, plan=plan, overwrite=True, watch=watcher)
        result = execute_run(req, progress)
        step = plan_run(str(result.path)).steps[0]
        ok = step.verdict == "pass" and not stopped
        if result.interrupted:
            raise KeyboardInterrupt
        probes.append(
            Probe(
                order=len(probes) + 1,
                users=users,
                verdict="pass" if ok else "fail",
                stopped_early=stopped[0] if stopped else "",
                p95_ms=step.p95_ms,
                rps=step.rps,
                error_pct=step.error_pct,
                wall_s=round(time.monotonic() - t, 2),
                path=str(out.relative_to(base.out)),
            )
        )
        progress(
            f"search probe {len(probes)}: {users} users {probes[-1].verdict}"
            + (f" (stopped early: {stopped[0]})" if stopped else "")
        )
        if ok:
            passed = users
        else:
            failed = users
    return _assemble(base, probes, settings, time.monotonic() - started, progress)


def _assemble(
    base: RunRequest,
    probes: list[Probe],
    settings: SearchSettings,
    wall_s: float,
    progress: Progress,
) -> RunResult:
    """The probes as one run, steps sorted by users; the search path in the manifest."""
    import pandas as pd

    from labcap.planner.capacity import STEPS_TABLE, step_statistics, steps_frame
    from labcap.store import FAILURES, WINDOWS, RunDir, atomic_write_parquet

    ordered = sorted(probes, key=lambda p: p.users)
    first = RunDir.open(base.out / ordered[0].path)
    one = first.manifest["load"]["steps"][0]
    plan = build_plan(
        tuple(p.users for p in ordered),
        one["duration_s"],
        settle_s=one["settle_s"],
        window_s=first.manifest["load"]["window_s"],
        spawn_rate=first.manifest["load"]["spawn_rate"],
    )
    per_step = len([w for w in plan.windows if w.step_index == 0])
    windows, failures, reasons = [], [], []
    for i, p in enumerate(ordered):
        run = RunDir.open(base.out / p.path)
        shift_s, shift_w = plan.steps[i].start_s, i * per_step
        w = run.windows().copy()
        w["step_index"] = i
        w["window_index"] = w["window_index"] + shift_w
        w["start_s"] = w["start_s"] + shift_s
        w["end_s"] = w["end_s"] + shift_s
        windows.append(w)
        f = run.failures().copy()
        if len(f):
            f["step_index"] = i
            f["window_index"] = f["window_index"] + shift_w
            failures.append(f)
        if run.manifest["status"] != "complete" and not p.stopped_early:
            reasons.append(f"probe {p.order} ({p.users} users): {run.manifest['status']}")
    windows_df = pd.concat(windows, ignore_index=True)
    failures_df = pd.concat(failures, ignore_index=True) if failures else first.failures().iloc[0:0]
    passing = [p.users for p in probes if p.verdict == "pass"]
    failing = [p.users for p in probes if p.verdict == "fail"]
    manifest = dict(first.manifest)
    manifest.update(
        {
            "status": "partial" if reasons else "complete",
            "status_reasons": reasons,
            "load": plan_to_dict(plan),
            "search": {
                "method": METHOD,
                "settings": dataclasses.asdict(settings),
                "probes": [dataclasses.asdict(p) for p in probes],
                "max_users_at_slo": max(passing) if passing else 0,
                "first_failing_users": min(failing) if failing else None,
                "wall_s": round(wall_s, 2),
            },
            "notes": list(manifest.get("notes", []))
            + ["steps are the adaptive search's probes, sorted by users (see search)"],
        }
    )
    atomic_write_parquet(base.out / WINDOWS, windows_df)
    atomic_write_parquet(base.out / FAILURES, failures_df)
    atomic_write_parquet(
        base.out / f"{STEPS_TABLE}.parquet", steps_frame(step_statistics(windows_df, plan))
    )
    RunDir(base.out).write_manifest(manifest)
    s = manifest["search"]
    progress(
        f"search done in {wall_s:.0f}s over {len(probes)} probes: "
        f"max_users_at_slo {s['max_users_at_slo']}, first failing {s['first_failing_users']}"
    )
    return RunResult(base.out, manifest["status"], tuple(reasons))
