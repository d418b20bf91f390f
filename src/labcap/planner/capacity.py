"""Capacity from a run: per-step statistics, SLO verdicts, ``max_users_at_slo``.

Step statistics merge the step's steady windows (the settling period is
excluded) by adding their HDR histograms, so percentiles are exact to 3
significant digits whatever the number of windows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from labcap.loadtests.recorder import histogram_summary, new_histogram
from labcap.model import ALL_ENDPOINTS, LATENCY_METRICS, LoadPlan, Slo, parse_slo, plan_from_dict
from labcap.store import RunDir

BAND_METHOD = "between the last passing step and the first failing step"


@dataclass(frozen=True)
class EndpointStats:
    step_index: int
    users: int
    endpoint: str
    requests: int
    failures: int
    error_pct: float
    rps: float
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class SloCheck:
    slo: str
    endpoint: str
    measured: float | None
    threshold: float
    ok: bool


@dataclass(frozen=True)
class StepVerdict:
    index: int
    users: int
    verdict: str  # pass | fail | no-data | not-run
    active_users: int
    steady_s: float
    requests: int
    failures: int
    error_pct: float
    rps: float
    p95_ms: float | None
    checks: tuple[SloCheck, ...] = field(default=())


@dataclass(frozen=True)
class CapacityPlan:
    run: str
    status: str
    status_reasons: tuple[str, ...]
    scenario: str
    slos: tuple[str, ...]
    max_users_at_slo: int | None
    band: tuple[int, int | None] | None
    limit_reached: bool
    binding: tuple[SloCheck, ...]
    steps: tuple[StepVerdict, ...]
    endpoints: tuple[EndpointStats, ...]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["capacity"] = {
            "max_users_at_slo": d.pop("max_users_at_slo"),
            "band": d.pop("band"),
            "band_method": BAND_METHOD,
            "limit_reached": d.pop("limit_reached"),
            "binding": d.pop("binding"),
        }
        return d


def step_statistics(windows: Any, plan: LoadPlan) -> list[EndpointStats]:
    """Merge each step's steady windows per endpoint, plus the all-endpoint row ``*``."""
    steady = windows[~windows["settling"].astype(bool)] if len(windows) else windows
    out: list[EndpointStats] = []
    for step in plan.steps:
        rows = steady[steady["step_index"] == step.index] if len(steady) else steady
        if not len(rows):
            continue
        spans = rows.drop_duplicates("window_index")
        steady_s = float((spans["end_s"] - spans["start_s"]).sum()) or 1e-9
        merged_all = new_histogram()
        totals = [0, 0]
        for endpoint, group in rows.groupby("endpoint", sort=True):
            hist = _merge(group["hdr"])
            merged_all.add(hist)
            req, fail = int(group["requests"].sum()), int(group["failures"].sum())
            totals[0] += req
            totals[1] += fail
            out.append(_stats(step.index, step.users, str(endpoint), req, fail, steady_s, hist))
        out.append(_stats(step.index, step.users, ALL_ENDPOINTS, *totals, steady_s, merged_all))
    return out


def _merge(encoded: Any) -> HdrHistogram:
    h = new_histogram()
    for text in encoded:
        if text:
            h.add(HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text))
    return h


def _stats(
    step: int,
    users: int,
    endpoint: str,
    requests: int,
    failures: int,
    steady_s: float,
    hist: HdrHistogram,
) -> EndpointStats:
    s = histogram_summary(hist)
    ms = {
        k.replace("_us", "_ms"): (None if v is None else round(v / 1000, 3)) for k, v in s.items()
    }
    return EndpointStats(
        step_index=step,
        users=users,
        endpoint=endpoint,
        requests=requests,
        failures=failures,
        error_pct=round(100.0 * failures / requests, 3) if requests else 0.0,
        rps=round(requests / steady_s, 3),
        **ms,
    )


def check_step(stats: list[EndpointStats], slos: tuple[Slo, ...]) -> list[SloCheck]:
    """Every SLO against one step's endpoint rows; latency SLOs apply per endpoint."""
    by_endpoint = {s.endpoint: s for s in stats}
    overall = by_endpoint.get(ALL_ENDPOINTS)
    own = {(s.endpoint, s.metric) for s in slos if s.endpoint}
    checks: list[SloCheck] = []
    for slo in slos:
        if slo.metric == "error_pct":
            value = overall.error_pct if overall else None
            checks.append(_check(slo, ALL_ENDPOINTS, value))
        elif slo.endpoint:
            row = by_endpoint.get(slo.endpoint)
            value = getattr(row, slo.metric) if row else None
            # An endpoint that saw no successful request cannot be said to meet its SLO.
            checks.append(_check(slo, slo.endpoint, value))
        else:
            for ep, row in sorted(by_endpoint.items()):
                if ep == ALL_ENDPOINTS or (ep, slo.metric) in own:
                    continue
                checks.append(_check(slo, ep, getattr(row, slo.metric)))
    return checks


def _check(slo: Slo, endpoint: str, value: float | None) -> SloCheck:
    ok = value is not None and value <= slo.threshold
    return SloCheck(slo.expression, endpoint, value, slo.threshold, ok)


def plan_capacity(run: RunDir) -> CapacityPlan:
    """The capacity plan of a run directory (complete or partial)."""
    manifest = run.manifest
    plan = plan_from_dict(manifest["load"])
    slos = tuple(parse_slo(s) for s in manifest["slos"])
    windows = run.windows()
    stats = step_statistics(windows, plan)
    failures = run.failures()
    verdicts = []
    for step in plan.steps:
        rows = [s for s in stats if s.step_index == step.index]
        overall = next((s for s in rows if s.endpoint == ALL_ENDPOINTS), None)
        if overall is None:
            verdicts.append(
                StepVerdict(step.index, step.users, "not-run", 0, 0.0, 0, 0, 0.0, 0.0, None)
            )
            continue
        checks = tuple(check_step(rows, slos))
        if overall.requests == overall.failures:
            verdict = "no-data"  # nothing succeeded: no latency to judge
        else:
            verdict = "pass" if all(c.ok for c in checks) else "fail"
        active = _active_users(windows, step.index)
        steady_s = round(overall.requests / overall.rps, 3) if overall.rps else 0.0
        verdicts.append(
            StepVerdict(
                step.index,
                step.users,
                verdict,
                active,
                steady_s,
                overall.requests,
                overall.failures,
                overall.error_pct,
                overall.rps,
                overall.p95_ms,
                checks,
            )
        )
    return _conclude(manifest, run, slos, tuple(verdicts), tuple(stats), failures)


def _active_users(w: Any, step_index: int) -> int:
    rows = w[(w["step_index"] == step_index) & ~w["settling"].astype(bool)]
    return int(rows["active_users"].max()) if len(rows) else 0


def _conclude(
    manifest: dict[str, Any],
    run: RunDir,
    slos: tuple[Slo, ...],
    steps: tuple[StepVerdict, ...],
    stats: tuple[EndpointStats, ...],
    failures: Any,
) -> CapacityPlan:
    passing: list[StepVerdict] = []
    first_bad: StepVerdict | None = None
    for s in steps:
        if s.verdict == "pass" and first_bad is None:
            passing.append(s)
        elif first_bad is None:
            first_bad = s
    ran = [s for s in steps if s.verdict != "not-run"]
    binding: tuple[SloCheck, ...] = ()
    if first_bad is not None and first_bad.verdict in ("fail", "no-data"):
        binding = tuple(c for c in first_bad.checks if not c.ok)
    if not ran or (
        first_bad is not None and first_bad.verdict in ("no-data", "not-run") and not passing
    ):
        max_users, band = None, None
    elif first_bad is None or first_bad.verdict == "not-run":
        max_users = passing[-1].users if passing else None
        band = (max_users, None) if max_users is not None else None
    else:
        max_users = passing[-1].users if passing else 0
        band = (max_users, first_bad.users)
    limit_reached = first_bad is not None and first_bad.verdict in ("fail", "no-data")
    text = _verdict_text(manifest, steps, max_users, band, limit_reached, binding, failures)
    return CapacityPlan(
        run=str(run.path),
        status=manifest["status"],
        status_reasons=tuple(manifest.get("status_reasons", [])),
        scenario=manifest["scenario"]["name"],
        slos=tuple(s.expression for s in slos),
        max_users_at_slo=max_users,
        band=band,
        limit_reached=limit_reached,
        binding=binding,
        steps=steps,
        endpoints=stats,
        verdict=text,
    )


def _fmt(check: SloCheck) -> str:
    metric = check.slo.split(":")[-1].split("=")[0]
    where = "" if check.endpoint == ALL_ENDPOINTS else f"{check.endpoint} "
    if check.measured is None:
        return f"{where}{metric} had no successful request (SLO {check.threshold:g})"
    unit = " %" if metric == "error_pct" else " ms"
    return f"{where}{metric} {check.measured:g}{unit} (SLO {check.threshold:g}{unit})"


def _verdict_text(
    manifest: dict[str, Any],
    steps: tuple[StepVerdict, ...],
    max_users: int | None,
    band: tuple[int, int | None] | None,
    limit_reached: bool,
    binding: tuple[SloCheck, ...],
    failures: Any,
) -> str:
    ran = [s for s in steps if s.verdict != "not-run"]
    parts: list[str] = []
    if not ran:
        parts.append("No step produced any measurement, so there is no capacity figure.")
    elif all(s.verdict == "no-data" for s in ran):
        reason = ""
        if len(failures):
            top = failures.groupby("reason")["count"].sum().sort_values(ascending=False)
            reason = f" The most frequent failure: {top.index[0]} ({int(top.iloc[0])}×)."
        parts.append(
            "Every request failed, so the target's capacity could not be measured: "
            "check that it is reachable and that the scenario's credentials are right." + reason
        )
    elif band is not None and limit_reached:
        bad = next(s for s in steps if s.verdict in ("fail", "no-data"))
        why = "; ".join(_fmt(c) for c in binding[:3]) or "no successful request"
        if max_users:
            parts.append(
                f"The deployment held {max_users} concurrent users within every SLO. "
                f"At {bad.users} users it did not: {why}. "
                f"Capacity lies between {max_users} and {bad.users} users ({BAND_METHOD})."
            )
        else:
            parts.append(
                f"Even the first step ({bad.users} users) missed its SLOs: {why}. "
                f"Capacity is below {bad.users} users; rerun with smaller steps."
            )
    elif max_users is not None:
        parts.append(
            f"The deployment met every SLO up to the largest step run, {max_users} concurrent "
            f"users: its limit lies above that. Rerun with larger steps to find it."
        )
    if manifest["status"] != "complete":
        why = "; ".join(manifest.get("status_reasons", [])) or "unknown reason"
        parts.append(
            f"This run is {manifest['status']} ({why}): the figure rests on the steps "
            "that completed and is a lower bound at best."
        )
    if manifest.get("target") == "local":
        env = manifest.get("environment", {})
        parts.append(
            f"Measured on the embedded reference lab, with the load generator sharing this "
            f"machine's {env.get('cpu_count', '?')} CPU cores: the figure describes this machine, "
            f"not a lab server."
        )
    return " ".join(parts)


def plan_run(path: str) -> CapacityPlan:
    return plan_capacity(RunDir.open(path))


__all__ = [
    "CapacityPlan",
    "plan_capacity",
    "plan_run",
    "step_statistics",
    "check_step",
    "LATENCY_METRICS",
]
