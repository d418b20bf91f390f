"""Capacity from a run: per-step statistics, SLO verdicts, ``max_users_at_slo``.

Step statistics merge the step's steady windows (the settling period is
excluded) by adding their HDR histograms, so percentiles are exact to 3
significant digits whatever the number of windows.

Beyond the one figure: the capacity under each SLO on its own (``per_slo``),
the knee of the throughput curve (``knee``) and, given the users a lab
expects, when demand outgrows the measured capacity (``project``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from labcap.histograms import histogram_summary, new_histogram
from labcap.model import ALL_ENDPOINTS, LoadPlan, Manifest
from labcap.slo import LATENCY_METRICS, Slo, noise_floor_ms
from labcap.store import RunDir

BAND_METHOD = "between the last passing step and the first failing step"

# How many successful requests a step's steady windows must hold on one endpoint before a
# percentile of them is judged against an SLO: at least 1/(1-q) for the q-th percentile,
# so that one request or more is expected beyond it and the figure is not simply the
# slowest request (p95 needs 20, p99 100). Fewer is "not enough data", never a breach.
MIN_SAMPLES = {"p50_ms": 2, "p90_ms": 10, "p95_ms": 20, "p99_ms": 100, "max_ms": 1}
MIN_SAMPLES_RULE = (
    "a percentile q is judged only on at least 1/(1-q) successful requests of the endpoint "
    "in the step's steady windows (p50 2, p90 10, p95 20, p99 100, max 1); with fewer the "
    "SLO is 'not enough data' for that step, not a breach"
)
NOT_ENOUGH_DATA = "not-enough-data"

# Knee: the first step whose goodput gain per added user is below this share of the
# initial slope ends the proportional part of the throughput curve.
KNEE_GAIN_FRACTION = 0.5
KNEE_METHOD = (
    "marginal throughput: the knee is the last step before the first one whose goodput "
    "gain per added user falls below {pct:g}% of the initial slope (goodput/users of the "
    "first step)"
)


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
    # over the threshold by less than the load generator's own floor (labcap calibrate):
    # within its noise, so not called a breach (ok is True)
    within_noise: bool = False
    noise_ms: float | None = None
    # successful requests behind the figure, and the least MIN_SAMPLES asks for (None for
    # error_pct); with fewer, status is "not-enough-data" and ok is False without a breach
    samples: int | None = None
    min_samples: int | None = None
    status: str = "pass"  # pass | fail | not-enough-data

    @property
    def enough_data(self) -> bool:
        return self.status != NOT_ENOUGH_DATA

    @property
    def failed(self) -> bool:
        """A breach measured on enough data (a within-noise excess is not one)."""
        return self.status == "fail"


@dataclass(frozen=True)
class StepVerdict:
    index: int
    users: int
    verdict: str  # pass | fail | inconclusive (only not enough data) | no-data | not-run
    active_users: int
    steady_s: float
    requests: int
    failures: int
    error_pct: float
    rps: float
    p95_ms: float | None
    checks: tuple[SloCheck, ...] = field(default=())


@dataclass(frozen=True)
class SloCapacity:
    """The capacity under one SLO on one endpoint, as if it were the only objective.

    ``max_users`` is the largest step meeting it with every smaller step that
    judged it meeting it too; steps where the endpoint saw no request do not
    judge it. ``first_failing_users`` is None when it never failed.
    """

    slo: str
    endpoint: str
    threshold: float
    max_users: int | None
    first_failing_users: int | None
    measured_at_failure: float | None
    limit_reached: bool


@dataclass(frozen=True)
class Knee:
    """Where throughput stops growing in proportion to users (see ``KNEE_METHOD``).

    The knee lies between ``users`` (still proportional) and ``next_users``
    (not any more); ``found`` is False when every step kept growing, or there
    are too few steps to tell.
    """

    method: str
    found: bool
    users: int | None
    next_users: int | None
    initial_rps_per_user: float | None
    gain_ratio_after: float | None  # the gain per user at next_users over the initial slope
    p95_ms_at_knee: float | None
    p95_ms_after: float | None
    note: str


@dataclass(frozen=True)
class CapacityPlan:
    run: str
    status: str
    status_reasons: tuple[str, ...]
    scenario: str
    slos: tuple[Slo, ...]  # printed as their expressions
    max_users_at_slo: int | None
    band: tuple[int, int | None] | None
    limit_reached: bool
    binding: tuple[SloCheck, ...]
    steps: tuple[StepVerdict, ...]
    endpoints: tuple[EndpointStats, ...]
    verdict: str
    per_slo: tuple[SloCapacity, ...] = field(default=())
    knee: Knee | None = None
    # endpoints with too few requests, in the steps up to the limit, to judge their SLOs
    needs_more_data: tuple[DataShortfall, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["slos"] = [s.expression for s in self.slos]
        d["capacity"] = {
            "max_users_at_slo": d.pop("max_users_at_slo"),
            "band": d.pop("band"),
            "band_method": BAND_METHOD,
            "limit_reached": d.pop("limit_reached"),
            "binding": d.pop("binding"),
            "per_slo": d.pop("per_slo"),
            "knee": d.pop("knee"),
            "min_samples_rule": MIN_SAMPLES_RULE,
            "needs_more_data": d.pop("needs_more_data"),
        }
        return d


@dataclass(frozen=True)
class DataShortfall:
    """An endpoint whose SLO a step could not judge: too few successful requests."""

    endpoint: str
    slo: str
    step_users: tuple[int, ...]
    samples: tuple[int, ...]  # per step in step_users
    min_samples: int


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


STEPS_TABLE = "steps"


def steps_frame(stats: list[EndpointStats]) -> Any:
    """Step statistics as a DataFrame, the run directory's ``steps.parquet``."""
    import pandas as pd

    columns = list(EndpointStats.__dataclass_fields__)
    return pd.DataFrame([asdict(s) for s in stats], columns=columns)


def cached_step_statistics(run: RunDir) -> list[EndpointStats] | None:
    """The step statistics written when the run was finalised (merging every window's
    histogram again is the slow part of planning a long run), or None."""
    frame = run.table(STEPS_TABLE)
    if frame is None or list(frame.columns) != list(EndpointStats.__dataclass_fields__):
        return None
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [EndpointStats(**r) for r in rows]


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


def check_step(
    stats: list[EndpointStats],
    slos: tuple[Slo, ...],
    calibration: dict[str, Any] | None = None,
    endpoints: tuple[str, ...] = (),
) -> list[SloCheck]:
    """Every SLO against one step's endpoint rows; latency SLOs apply per endpoint.

    With a calibration, a latency over its threshold by no more than the
    generator's own floor at that percentile is within noise: not a breach.
    ``endpoints``: the run's endpoints; those without a row in this step get a
    not-enough-data check under an all-endpoint latency SLO.
    A latency on fewer successful requests than ``MIN_SAMPLES`` is not enough data.
    """
    by_endpoint: dict[str, EndpointStats | None] = dict.fromkeys(endpoints)
    by_endpoint.update({s.endpoint: s for s in stats})
    overall = by_endpoint.get(ALL_ENDPOINTS)
    own = {(s.endpoint, s.metric) for s in slos if s.endpoint}
    checks: list[SloCheck] = []
    for slo in slos:
        if slo.metric == "error_pct":
            value = overall.error_pct if overall else None
            checks.append(_check(slo, ALL_ENDPOINTS, value, calibration))
        elif slo.endpoint:
            # an endpoint without (enough) successful requests is not judged either way
            checks.append(
                _latency_check(slo, slo.endpoint, by_endpoint.get(slo.endpoint), calibration)
            )
        else:
            for ep, row in sorted(by_endpoint.items()):
                if ep == ALL_ENDPOINTS or (ep, slo.metric) in own:
                    continue
                checks.append(_latency_check(slo, ep, row, calibration))
    return checks


def _latency_check(
    slo: Slo, endpoint: str, row: EndpointStats | None, calibration: dict[str, Any] | None
) -> SloCheck:
    samples = (row.requests - row.failures) if row else 0
    need = MIN_SAMPLES.get(slo.metric, 1)
    value = getattr(row, slo.metric) if row else None
    if samples < need or value is None:
        return SloCheck(
            slo.expression,
            endpoint,
            value,
            slo.threshold,
            False,
            samples=samples,
            min_samples=need,
            status=NOT_ENOUGH_DATA,
        )
    return _check(slo, endpoint, value, calibration, samples, need)


def _check(
    slo: Slo,
    endpoint: str,
    value: float | None,
    calibration: dict[str, Any] | None = None,
    samples: int | None = None,
    need: int | None = None,
) -> SloCheck:
    ok = value is not None and value <= slo.threshold
    noise = noise_floor_ms(calibration, slo.metric)
    extra = {"samples": samples, "min_samples": need}
    if not ok and value is not None and noise is not None and value - slo.threshold <= noise:
        return SloCheck(slo.expression, endpoint, value, slo.threshold, True, True, noise, **extra)
    return SloCheck(
        slo.expression, endpoint, value, slo.threshold, ok, **extra, status="pass" if ok else "fail"
    )


def plan_capacity(run: RunDir) -> CapacityPlan:
    """The capacity plan of a run directory (complete or partial)."""
    manifest = run.read_manifest()
    plan, slos = manifest.plan, manifest.slos
    windows = run.windows()
    stats = cached_step_statistics(run) or step_statistics(windows, plan)
    failures = run.failures()
    # endpoints that succeeded somewhere in the run: one absent from a step is short of data
    # there (one that only ever failed is the error rate's business)
    endpoints = tuple(
        sorted({s.endpoint for s in stats if s.requests > s.failures} - {ALL_ENDPOINTS})
    )
    verdicts = []
    for step in plan.steps:
        rows = [s for s in stats if s.step_index == step.index]
        overall = next((s for s in rows if s.endpoint == ALL_ENDPOINTS), None)
        if overall is None:
            verdicts.append(
                StepVerdict(step.index, step.users, "not-run", 0, 0.0, 0, 0, 0.0, 0.0, None)
            )
            continue
        checks = tuple(check_step(rows, slos, manifest.calibration, endpoints))
        if overall.requests == overall.failures:
            verdict = "no-data"  # nothing succeeded: no latency to judge
        elif any(c.failed for c in checks):
            verdict = "fail"
        elif all(c.enough_data for c in checks):
            verdict = "pass"
        else:
            verdict = "inconclusive"  # nothing breached; some SLO had too few requests
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
    manifest: Manifest,
    run: RunDir,
    slos: tuple[Slo, ...],
    steps: tuple[StepVerdict, ...],
    stats: tuple[EndpointStats, ...],
    failures: Any,
) -> CapacityPlan:
    # Inconclusive steps (nothing breached, some SLO short of data) neither pass nor end
    # the walk: the capacity is the last passing step before the first failing one.
    passing: list[StepVerdict] = []
    first_bad: StepVerdict | None = None
    for s in steps:
        if s.verdict == "pass":
            passing.append(s)
        elif s.verdict != "inconclusive":
            first_bad = s
            break
    ran = [s for s in steps if s.verdict != "not-run"]
    binding: tuple[SloCheck, ...] = ()
    if first_bad is not None and first_bad.verdict in ("fail", "no-data"):
        binding = tuple(c for c in first_bad.checks if c.failed)
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
    upto = steps[: steps.index(first_bad) + 1] if first_bad is not None else steps
    short = data_shortfalls(upto)
    text = _verdict_text(manifest, steps, max_users, band, limit_reached, binding, failures)
    if short:
        text += " " + _shortfall_text(short)
    return CapacityPlan(
        run=str(run.path),
        status=manifest.status,
        status_reasons=manifest.status_reasons,
        scenario=manifest.scenario_name,
        slos=slos,
        max_users_at_slo=max_users,
        band=band,
        limit_reached=limit_reached,
        binding=binding,
        steps=steps,
        endpoints=stats,
        verdict=text,
        per_slo=per_slo_capacity(steps),
        knee=find_knee(steps),
        needs_more_data=short,
    )


def data_shortfalls(steps: tuple[StepVerdict, ...]) -> tuple[DataShortfall, ...]:
    """Per (endpoint, SLO), the inconclusive steps whose requests were too few to judge it
    (a failing step is decided already, whatever else it lacks)."""
    found: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for s in steps:
        for c in s.checks if s.verdict == "inconclusive" else ():
            if not c.enough_data:
                found.setdefault((c.endpoint, c.slo), []).append(
                    (s.users, c.samples or 0, c.min_samples or 1)
                )
    return tuple(
        DataShortfall(
            endpoint=ep,
            slo=slo,
            step_users=tuple(u for u, _, _ in rows),
            samples=tuple(n for _, n, _ in rows),
            min_samples=max(m for _, _, m in rows),
        )
        for (ep, slo), rows in sorted(found.items())
    )


def _shortfall_text(short: tuple[DataShortfall, ...]) -> str:
    names = sorted({d.endpoint for d in short})
    first = short[0]
    at = ", ".join(
        f"{n} at {u} users" for u, n in zip(first.step_users, first.samples, strict=True)
    )
    return (
        f"Not enough data: {', '.join(names)} had too few successful requests in the steady "
        f"windows to judge {'its' if len(names) == 1 else 'their'} SLOs (e.g. {first.endpoint} "
        f"{first.slo}: {at}; it needs {first.min_samples}), so those steps are inconclusive, "
        "not failures: rerun with longer steps (a percentile q needs 1/(1-q) requests: "
        "p95 20, p99 100)."
    )


def per_slo_capacity(steps: tuple[StepVerdict, ...]) -> tuple[SloCapacity, ...]:
    """For every (SLO, endpoint) judged in the run, the capacity under it alone.

    Steps are taken in run order, as for ``max_users_at_slo``: the first step
    that misses the SLO (or was not run) ends the walk.
    """
    keys: dict[tuple[str, str], float] = {}
    for s in steps:
        for c in s.checks:
            keys.setdefault((c.slo, c.endpoint), c.threshold)
    out = []
    for (slo, endpoint), threshold in keys.items():
        best: int | None = None
        failing: StepVerdict | None = None
        measured: float | None = None
        stopped = False
        for s in steps:
            if s.verdict == "not-run":
                stopped = True
                break
            check = next((c for c in s.checks if (c.slo, c.endpoint) == (slo, endpoint)), None)
            if check is None or not check.enough_data:
                continue  # too few requests in this step: no verdict either way
            if not check.ok:
                failing, measured = s, check.measured
                break
            best = s.users
        limit = failing is not None and not stopped
        if limit and best is None:
            best = 0
        out.append(
            SloCapacity(
                slo=slo,
                endpoint=endpoint,
                threshold=threshold,
                max_users=best,
                first_failing_users=failing.users if failing else None,
                measured_at_failure=measured,
                limit_reached=limit,
            )
        )
    return tuple(sorted(out, key=_binds_first))


def _binds_first(c: SloCapacity) -> tuple[int, float, str, str]:
    # the SLO that fails at the smallest user count binds first; never-failing ones last
    at = c.first_failing_users if c.first_failing_users is not None else math.inf
    return (0 if c.limit_reached else 1, at, c.slo, c.endpoint)


def find_knee(steps: tuple[StepVerdict, ...], fraction: float = KNEE_GAIN_FRACTION) -> Knee:
    """The knee of the goodput-vs-users curve by the marginal-throughput method.

    Goodput (successful requests per steady second) of a closed system grows
    in proportion to users until a resource saturates; the initial slope is the
    first step's goodput per user (zero users, zero throughput). The knee is the
    last step before the first one whose gain per added user is below
    ``fraction`` of that slope. Steps are taken by user count; steps without a
    measurement are skipped.
    """
    method = KNEE_METHOD.format(pct=100 * fraction)
    points: list[tuple[int, float, float | None]] = []
    for s in sorted(steps, key=lambda s: s.users):
        if s.verdict == "not-run" or s.steady_s <= 0 or (points and points[-1][0] == s.users):
            continue
        points.append((s.users, (s.requests - s.failures) / s.steady_s, s.p95_ms))
    if len(points) < 2:
        return Knee(method, False, None, None, None, None, None, None, "needs two steps or more")
    slope0 = points[0][1] / points[0][0]
    if slope0 <= 0:
        return Knee(
            method, False, None, None, 0.0, None, None, None, "the first step had no goodput"
        )
    for (u0, x0, p0), (u1, x1, p1) in zip(points, points[1:], strict=False):
        ratio = (x1 - x0) / (u1 - u0) / slope0
        if ratio < fraction:
            note = (
                "throughput had already stopped growing by the first step: the knee is at or "
                "below it"
                if u0 == points[0][0]
                else f"goodput grew in proportion up to {u0} users and not beyond"
            )
            return Knee(method, True, u0, u1, round(slope0, 4), round(ratio, 3), p0, p1, note)
    return Knee(
        method,
        False,
        None,
        None,
        round(slope0, 4),
        None,
        None,
        None,
        f"goodput still grew in proportion at the largest step ({points[-1][0]} users): "
        "the knee lies above it",
    )


@dataclass(frozen=True)
class Projection:
    """When expected demand outgrows the measured capacity.

    Demand grows by ``growth_pct_per_month`` compounded monthly:
    users(t) = expected_users * (1 + g)^t. ``months_until_exhausted`` is the t
    at which users(t) first exceeds ``capacity_users`` (0 when it already
    does; None with ``never`` when demand does not grow past it, or when
    there is no capacity figure or no expected users). ``months_until_band_upper``
    is when demand reaches the first failing step: the optimistic end.
    """

    available: bool
    expected_users: int | None
    growth_pct_per_month: float
    capacity_users: int | None
    capacity_is_lower_bound: bool
    exhausted_now: bool | None
    never: bool
    months_until_exhausted: float | None
    months_until_band_upper: float | None
    users_in_12_months: float | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def months_until(capacity: float, expected: float, growth_pct: float) -> float:
    """Months until expected*(1+g)^t exceeds capacity: 0 if it already does, inf if never."""
    if expected > capacity:
        return 0.0
    if growth_pct <= 0 or expected <= 0:
        return math.inf
    return math.log(capacity / expected) / math.log1p(growth_pct / 100)


def project(
    plan: CapacityPlan, expected_users: int | None, growth_pct_per_month: float = 0.0
) -> Projection:
    """Project the expected users forward against ``max_users_at_slo`` (and the band's top)."""
    g = float(growth_pct_per_month or 0.0)
    cap = plan.max_users_at_slo
    lower_bound = not plan.limit_reached
    if expected_users is None or cap is None:
        why = (
            "pass --expected-users N (and --growth-per-month PCT) for a projection"
            if expected_users is None
            else "the run has no capacity figure to project against"
        )
        return Projection(
            available=False,
            expected_users=expected_users,
            growth_pct_per_month=g,
            capacity_users=cap,
            capacity_is_lower_bound=lower_bound,
            exhausted_now=None,
            never=False,
            months_until_exhausted=None,
            months_until_band_upper=None,
            users_in_12_months=None,
            text=why,
        )
    months = months_until(cap, expected_users, g)
    upper = plan.band[1] if plan.band and plan.band[1] is not None else None
    # the first failing step did not hold: once demand reaches it, it is past the band too
    m_upper = months_until(upper, expected_users, g) if upper else math.inf
    in_12 = round(expected_users * (1 + g / 100) ** 12, 1)
    never = math.isinf(months)
    if lower_bound and months == 0:
        text = (
            f"{expected_users} expected users are more than the {cap} users the run reached "
            "without finding the limit: how long capacity lasts is unknown."
        )
        return Projection(
            available=False,
            expected_users=expected_users,
            growth_pct_per_month=g,
            capacity_users=cap,
            capacity_is_lower_bound=True,
            exhausted_now=None,
            never=False,
            months_until_exhausted=None,
            months_until_band_upper=None,
            users_in_12_months=in_12,
            text=text,
        )
    if months == 0:
        text = f"{expected_users} expected users already exceed the measured capacity ({cap})."
    elif never:
        text = f"{expected_users} expected users fit the capacity ({cap}); demand is not growing."
    else:
        text = (
            f"At {g:g}% growth a month, {expected_users} users outgrow the capacity ({cap}) in "
            f"{months:.1f} months ({in_12:g} users in 12 months)."
        )
    if lower_bound and not never:
        text += " The run did not reach the limit, so capacity lasts at least that long."
    return Projection(
        available=True,
        expected_users=expected_users,
        growth_pct_per_month=g,
        capacity_users=cap,
        capacity_is_lower_bound=lower_bound,
        exhausted_now=months == 0,
        never=never,
        months_until_exhausted=None if never else round(months, 1),
        months_until_band_upper=None if math.isinf(m_upper) else round(m_upper, 1),
        users_in_12_months=in_12,
        text=text,
    )


def _fmt(check: SloCheck) -> str:
    metric = check.slo.split(":")[-1].split("=")[0]
    where = "" if check.endpoint == ALL_ENDPOINTS else f"{check.endpoint} "
    if check.measured is None:
        return f"{where}{metric} had no successful request (SLO {check.threshold:g})"
    unit = " %" if metric == "error_pct" else " ms"
    return f"{where}{metric} {check.measured:g}{unit} (SLO {check.threshold:g}{unit})"


def _verdict_text(
    manifest: Manifest,
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
        elif bad is not steps[0]:
            parts.append(
                f"No step below {bad.users} users met every SLO on enough requests, and at "
                f"{bad.users} users: {why}. Capacity is below {bad.users} users; how far below "
                "is not known."
            )
        else:
            parts.append(
                f"Even the first step ({bad.users} users) missed its SLOs: {why}. "
                f"Capacity is below {bad.users} users; rerun with smaller steps."
            )
    elif max_users is not None and steps[-1].verdict == "inconclusive":
        parts.append(
            f"The deployment met every SLO it could judge up to {max_users} concurrent users; "
            "the steps above it had too few requests to judge some SLOs, so its limit is not "
            "known."
        )
    elif max_users is not None:
        parts.append(
            f"The deployment met every SLO up to the largest step run, {max_users} concurrent "
            f"users: its limit lies above that. "
            + (
                f"Rerun with a higher --max-users (the search stopped at "
                f"{manifest.search['settings']['max_users']}) to find it."
                if manifest.search and manifest.search.get("settings", {}).get("max_users")
                else "Rerun with larger steps to find it."
            )
        )
    noisy = [(s, c) for s in steps for c in s.checks if c.within_noise]
    if noisy:
        s0, c0 = noisy[0]
        parts.append(
            f"Not called a breach: at {s0.users} users {_fmt(c0)} is over its SLO by less than "
            f"the load generator's own floor at that percentile ({c0.noise_ms:g} ms, measured "
            f"by calibration on this machine), so it is within the generator's noise"
            + (f"; {len(noisy) - 1} more such check(s)." if len(noisy) > 1 else ".")
        )
    lockstep = manifest.lockstep or {}
    if lockstep.get("flagged"):
        parts.append(
            f"Lock-step: in {lockstep['windows_flagged']} of {lockstep['windows_judged']} steady "
            f"windows the users sent in synchronised bursts (up to {lockstep['max_burst_pct']:g} "
            "% of sends), so tail latencies partly measure the load generator's own bursts."
        )
    why = "; ".join(manifest.status_reasons) or "unknown reason"
    if manifest.status == "invalid":
        parts.append(
            f"This run is invalid ({why}): its figures do not describe the deployment, "
            "so there is no confident verdict; fix the cause and rerun."
        )
    elif manifest.status != "complete":
        parts.append(
            f"This run is {manifest.status} ({why}): the figure rests on the steps "
            "that completed and is a lower bound at best."
        )
    if manifest.target == "local":
        env = manifest.environment
        parts.append(
            f"Measured on the embedded reference lab, with the load generator sharing this "
            f"machine's {env.get('cpu_count', '?')} CPU cores: the figure describes this machine, "
            f"not a lab server."
        )
    return " ".join(parts)


def plan_run(path: str, side: str | None = None) -> CapacityPlan:
    """The plan of a run directory; of one side of a paired run with ``side``."""
    run = RunDir.open(path)
    return plan_capacity(run.side_view(side) if side else run)


__all__ = [
    "CapacityPlan",
    "DataShortfall",
    "Knee",
    "MIN_SAMPLES",
    "MIN_SAMPLES_RULE",
    "data_shortfalls",
    "Projection",
    "SloCapacity",
    "find_knee",
    "per_slo_capacity",
    "project",
    "plan_capacity",
    "plan_run",
    "step_statistics",
    "check_step",
    "LATENCY_METRICS",
]
