"""The CI gate: is CURRENT slower, or failing more, than BASELINE beyond noise?

Per step and per endpoint, over the steady windows of each run (settling
windows are left out, as in the capacity plan):

* **significance** — a one-sided Mann-Whitney U test on the per-window
  values (the window's latency percentile, or its error percentage):
  is CURRENT stochastically larger than BASELINE? Windows, not requests,
  are the samples, so a burst of correlated slow requests counts once.
* **effect** — the step's percentile from the merged HDR histograms of its
  steady windows (what ``labcap plan`` reports) as a relative change
  current/baseline - 1; for ``error_pct`` the difference in percentage
  points. Its confidence interval comes from a bootstrap that resamples
  windows.

A comparison is a *regression* when p < alpha, the effect is above its
margin, and (latency) the slowdown in ms is above the noise floor. When the
interval is wider than the margin (±margin), the data cannot tell a
margin-sized regression from noise: the comparison is a regression only if
the whole interval lies above the margin, and *inconclusive* if it reaches
above it. Missing or thin data is inconclusive, never a pass: the gate fails
closed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from labcap.errors import LabcapError
from labcap.model import Manifest
from labcap.store import RunDir

PASS, REGRESSION, INCONCLUSIVE = "pass", "regression", "inconclusive"
EXIT_CODES = {PASS: 0, REGRESSION: 1, INCONCLUSIVE: 3}
EXIT_USAGE = 2  # raised as LabcapError and turned into exit 2 by cli.py

# Latency percentiles the gate compares; ``error_pct`` is the failed share of requests.
LATENCY_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
GATE_METRICS = (*LATENCY_PERCENTILES, "error_pct")

METHOD = (
    "per step and endpoint over steady windows: one-sided Mann-Whitney U on per-window values "
    "(p < alpha); effect from the merged HDR histograms (latency: relative change of the "
    "percentile; error_pct: percentage points) above its margin, latency slowdown above the "
    "min_effect_ms noise floor; interval: the wider of a window and a request bootstrap; a "
    "margin under min_margin_se standard errors is inconclusive unless the whole interval "
    "lies above it"
)


@dataclass(frozen=True)
class MaxRegression:
    """How much worse ``metric`` may get: a fraction (0.10 = 10 %) for latency,
    percentage points for ``error_pct``; None switches the metric off.
    ``endpoint`` None applies to every endpoint without a limit of its own."""

    metric: str
    limit: float | None
    endpoint: str | None = None

    @property
    def expression(self) -> str:
        prefix = f"{self.endpoint}:" if self.endpoint else ""
        if self.limit is None:
            value = "off"
        elif self.metric == "error_pct":
            value = f"{self.limit:g}"
        else:
            value = f"{self.limit * 100:g}%"
        return f"{prefix}{self.metric}={value}"


DEFAULT_MAX_REGRESSIONS = (MaxRegression("p95", 0.10), MaxRegression("error_pct", 0.5))


@dataclass(frozen=True)
class GateThresholds:
    """Settings of the gate; the defaults are the CLI's."""

    max_regressions: tuple[MaxRegression, ...] = DEFAULT_MAX_REGRESSIONS

    def limits_for(self, endpoint: str) -> list[tuple[str, float]]:
        """(metric, limit) gated for ``endpoint``, in GATE_METRICS order."""
        general = {m.metric: m.limit for m in self.max_regressions if m.endpoint is None}
        own = {m.metric: m.limit for m in self.max_regressions if m.endpoint == endpoint}
        merged = {**general, **own}
        return [(m, merged[m]) for m in GATE_METRICS if merged.get(m) is not None]

    # latency slowdowns smaller than this (ms) are noise, whatever their ratio
    min_effect_ms: float = 1.0
    # significance level of the one-sided Mann-Whitney U test, per comparison
    alpha: float = 0.05
    # steady windows with data each run needs per step and endpoint
    min_windows: int = 5
    # bootstrap resamples and the two-sided level of the reported interval
    bootstrap_samples: int = 1000
    confidence: float = 0.90
    # a margin narrower than this many standard errors of the effect cannot be told from
    # noise (the chance that noise alone crosses it is then above ~0.6 %): inconclusive
    min_margin_se: float = 2.5
    # the bootstrap's seed: the same runs give the same report
    seed: int = 0


@dataclass(frozen=True)
class Comparison:
    """One step × endpoint × metric: its outcome and the numbers behind it.

    ``baseline``/``current``/``delta`` are in ``unit`` (ms, or % of requests);
    ``effect``, ``effect_ci`` and ``limit`` are what the margin applies to: the
    relative change (0.2 = 20 % slower) for latency, percentage points for
    ``error_pct``.
    """

    step_index: int
    users: int
    endpoint: str
    metric: str
    outcome: str
    reason: str
    unit: str
    limit: float
    baseline: float | None = None
    current: float | None = None
    delta: float | None = None
    effect: float | None = None
    effect_ci: tuple[float, float] | None = None
    p_value: float | None = None
    windows: tuple[int, int] = (0, 0)

    @property
    def step_label(self) -> str:
        return f"step{self.step_index + 1}_{self.users}users"


@dataclass(frozen=True)
class GateResult:
    baseline: str
    current: str
    outcome: str
    exit_code: int
    reasons: tuple[str, ...]
    method: str
    thresholds: GateThresholds
    comparisons: tuple[Comparison, ...] = field(default=())

    @property
    def summary(self) -> str:
        counts = {o: sum(c.outcome == o for c in self.comparisons) for o in EXIT_CODES}
        n = len(self.comparisons)
        text = {
            PASS: f"PASS: {n} comparisons, no regression beyond noise",
            REGRESSION: f"REGRESSION: {counts[REGRESSION]} of {n} comparisons regressed",
            INCONCLUSIVE: f"INCONCLUSIVE: {counts[INCONCLUSIVE]} of {n} comparisons "
            "could not be made, and the gate does not pass on missing data",
        }[self.outcome]
        if self.outcome == INCONCLUSIVE and not n:
            text = "INCONCLUSIVE: the runs could not be compared"
        return f"{text} (exit {self.exit_code})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = self.summary
        d["thresholds"]["max_regressions"] = [
            {"metric": m.metric, "limit": m.limit, "expression": m.expression}
            for m in self.thresholds.max_regressions
        ]
        for c, row in zip(self.comparisons, d["comparisons"], strict=True):
            row["step"] = c.step_label
        return d


# ---------------------------------------------------------------- parsing thresholds

_LIMIT_RE = re.compile(
    r"^\s*(?:(?P<endpoint>[^:=\s][^:=]*?)\s*:\s*)?(?P<metric>[a-z0-9_]+)\s*=\s*"
    r"(?P<value>\S+?)\s*(?P<suffix>%|pp)?\s*$"
)


def parse_max_regression(text: str) -> MaxRegression:
    """'p95=10%' -> p95 may grow 10 %; 'error_pct=0.5' -> by 0.5 points;
    'hub.spawn_ready:p95=50%' -> that endpoint's own limit; 'p99=off' -> not gated."""
    m = _LIMIT_RE.match(str(text))
    if not m:
        raise LabcapError(
            f"--max-regression {text!r} is malformed: use [ENDPOINT:]METRIC=LIMIT, "
            "e.g. p95=10%, error_pct=0.5 or hub.spawn_ready:p95=50%"
        )
    metric, value, suffix = m.group("metric").removesuffix("_ms"), m.group("value"), m["suffix"]
    endpoint = m.group("endpoint")
    if metric not in GATE_METRICS:
        raise LabcapError(
            f"--max-regression {text!r}: unknown metric {metric!r}; "
            f"valid metrics are {', '.join(GATE_METRICS)}"
        )
    if value.lower() == "off" and not suffix:
        return MaxRegression(metric, None, endpoint)
    try:
        number = float(value)
    except ValueError:
        raise LabcapError(
            f"--max-regression {text!r}: {value!r} is not a number (or 'off')"
        ) from None
    if not (number >= 0 and number != float("inf")):
        raise LabcapError(f"--max-regression {text!r}: the limit must be a finite number >= 0")
    if metric == "error_pct":
        return MaxRegression(metric, number, endpoint)  # percentage points, '%' or 'pp' alike
    if suffix == "pp":
        raise LabcapError(f"--max-regression {text!r}: latency limits are relative, e.g. p95=10%")
    return MaxRegression(metric, number / 100, endpoint)  # '10' and '10%' both mean 10 %


def _number(text: str | float, what: str, low: float, high: float, unit: str = "") -> float:
    raw = str(text).strip()
    if unit:
        raw = raw.removesuffix(unit).strip()
    try:
        value = float(raw)
    except ValueError:
        raise LabcapError(f"{what} {text!r} is not a number") from None
    if not low <= value <= high:
        raise LabcapError(f"{what} {text!r} must lie between {low:g} and {high:g}")
    return value


def thresholds_from_options(
    max_regressions: Sequence[str] = (),
    *,
    min_effect_ms: str | float = 1.0,
    alpha: str | float = 0.05,
    min_windows: str | int = 5,
) -> GateThresholds:
    """Thresholds from CLI text; each --max-regression adds to or overrides the defaults."""
    limits = {(m.endpoint, m.metric): m for m in DEFAULT_MAX_REGRESSIONS}
    for text in max_regressions:
        parsed = parse_max_regression(text)
        limits[(parsed.endpoint, parsed.metric)] = parsed
    if all(m.limit is None for m in limits.values()):
        raise LabcapError("every metric is switched off: the gate would have nothing to check")
    windows = _number(min_windows, "--min-windows", 3, 1_000_000)
    if windows != int(windows):
        raise LabcapError(f"--min-windows {min_windows!r} must be a whole number")
    return GateThresholds(
        max_regressions=tuple(
            sorted(limits.values(), key=lambda m: (m.endpoint or "", GATE_METRICS.index(m.metric)))
        ),
        min_effect_ms=_number(min_effect_ms, "--min-effect-ms", 0, 3_600_000, unit="ms"),
        alpha=_number(alpha, "--alpha", 1e-6, 0.5),
        min_windows=int(windows),
    )


# ---------------------------------------------------------------- comparing runs


def compare_paths(
    baseline: str | Path, current: str | Path, thresholds: GateThresholds | None = None
) -> GateResult:
    """Open two run directories (LabcapError if either is unusable) and compare them."""
    return compare_runs(RunDir.open(baseline), RunDir.open(current), thresholds)


def compare_runs(
    baseline: RunDir, current: RunDir, thresholds: GateThresholds | None = None
) -> GateResult:
    """Compare CURRENT with BASELINE step by step, endpoint by endpoint."""
    th = thresholds or GateThresholds()
    mb, mc = baseline.read_manifest(), current.read_manifest()
    reasons = [
        f"{role} run is {m.status}"
        + (f" ({'; '.join(m.status_reasons)})" if m.status_reasons else "")
        for role, m in (("baseline", mb), ("current", mc))
        if m.status != "complete"
    ]
    mismatch = incomparable_reasons(mb, mc)
    result = GateResult(
        baseline=str(baseline.path),
        current=str(current.path),
        outcome=INCONCLUSIVE,
        exit_code=EXIT_CODES[INCONCLUSIVE],
        reasons=tuple(reasons + mismatch),
        method=METHOD,
        thresholds=th,
    )
    if mismatch:
        return result
    plan = mb.plan
    rng = np.random.default_rng(th.seed)
    steady_b, steady_c = _steady(baseline.windows()), _steady(current.windows())
    comparisons: list[Comparison] = []
    for step in plan.steps:
        rows_b = steady_b[steady_b["step_index"] == step.index]
        rows_c = steady_c[steady_c["step_index"] == step.index]
        comparisons += _compare_step(step.index, step.users, rows_b, rows_c, th, rng)
    outcomes = {c.outcome for c in comparisons}
    if REGRESSION in outcomes:
        outcome = REGRESSION  # a measured regression is reported even from a partial run
    elif INCONCLUSIVE in outcomes or reasons or not comparisons:
        outcome = INCONCLUSIVE
    else:
        outcome = PASS
    return replace(
        result, outcome=outcome, exit_code=EXIT_CODES[outcome], comparisons=tuple(comparisons)
    )


def incomparable_reasons(mb: Manifest, mc: Manifest) -> list[str]:
    """Why two manifests describe runs that cannot be compared (empty if they can)."""
    out = []
    sb, sc = mb.scenario_name, mc.scenario_name
    if sb != sc:
        out.append(f"different scenarios: baseline {sb!r}, current {sc!r}")
    ub = [s.users for s in mb.plan.steps]
    uc = [s.users for s in mc.plan.steps]
    if ub != uc:
        out.append(f"different user steps: baseline {ub}, current {uc}")
    wb, wc = mb.plan.window_s, mc.plan.window_s
    if wb != wc:
        out.append(
            f"different window lengths (baseline {wb:g}s, current {wc:g}s): "
            "per-window percentiles are not comparable"
        )
    # compared as their canonical text: what the user wrote, as the output shows it
    slo_b, slo_c = {s.expression for s in mb.slos}, {s.expression for s in mc.slos}
    if slo_b != slo_c:
        out.append(f"different SLOs: baseline {sorted(slo_b)}, current {sorted(slo_c)}")
    return out


def _steady(windows: Any) -> Any:
    if not len(windows):
        return windows
    return windows[~windows["settling"].astype(bool)]


def _compare_step(
    index: int, users: int, rows_b: Any, rows_c: Any, th: GateThresholds, rng: Any
) -> list[Comparison]:
    endpoints = sorted(set(rows_b["endpoint"]) | set(rows_c["endpoint"])) or ["*"]
    out = []
    for endpoint in endpoints:
        ep_b = rows_b[rows_b["endpoint"] == endpoint]
        ep_c = rows_c[rows_c["endpoint"] == endpoint]
        missing = [role for role, rows in (("baseline", ep_b), ("current", ep_c)) if not len(rows)]
        for metric, limit in th.limits_for(str(endpoint)):
            unit = "%" if metric == "error_pct" else "ms"
            base = Comparison(index, users, str(endpoint), metric, INCONCLUSIVE, "", unit, limit)
            if missing:
                what = "the step has no steady windows" if endpoint == "*" else "no requests"
                reason = f"{what} in {' or '.join(missing)} (step {index + 1}, {users} users)"
                out.append(replace(base, reason=reason))
            elif metric == "error_pct":
                out.append(_compare_errors(base, ep_b, ep_c, th, rng))
            else:
                out.append(_compare_latency(base, ep_b, ep_c, th, rng))
    return out


def _too_few(base: Comparison, n: tuple[int, int], th: GateThresholds, what: str) -> str:
    thin = [
        f"{role} has {k} steady window{'s' * (k != 1)} with {what}"
        for role, k in zip(("baseline", "current"), n, strict=True)
        if k < th.min_windows
    ]
    return f"{'; '.join(thin)} (the test needs {th.min_windows})" if thin else ""


@dataclass(frozen=True)
class _Evidence:
    """What one comparison's decision rests on, in the effect's terms."""

    p_value: float
    effect: float
    ci: tuple[float, float]
    limit: float
    z: float  # standard normal quantile of the interval's confidence
    margin_text: str
    # latency only: the slowdown in ms at the estimate and at the top of the interval
    floor_text: str = ""
    above_floor: bool = True
    upper_above_floor: bool = True


def _judge(ev: _Evidence, alpha: float, min_margin_se: float) -> tuple[str, str]:
    """Regression, pass or inconclusive, and why, in words."""
    significant = ev.p_value < alpha
    # the interval's half-width / z is the effect's standard error
    noisy = (ev.ci[1] - ev.ci[0]) / 2 / ev.z > ev.limit / min_margin_se
    if significant and ev.above_floor:
        if not noisy and ev.effect > ev.limit:
            tail = f" and the {ev.floor_text}" if ev.floor_text else ""
            return REGRESSION, f"significant (p < {alpha:g}), above the {ev.margin_text}{tail}"
        if noisy and ev.ci[0] > ev.limit:
            return REGRESSION, (
                f"significant (p < {alpha:g}), and even the low end of its interval is above "
                f"the {ev.margin_text}"
            )
    if noisy and ev.ci[1] > ev.limit and ev.upper_above_floor:
        return INCONCLUSIVE, (
            f"too noisy to resolve the {ev.margin_text}, which spans fewer than "
            f"{min_margin_se:g} standard errors of the change: run longer steps, or allow more "
            "for this metric with --max-regression"
        )
    within = []
    if ev.effect <= ev.limit:
        within.append(ev.margin_text)
    if not ev.above_floor:
        within.append(ev.floor_text)
    if not significant:
        return PASS, f"not significant (p ≥ {alpha:g})" + (
            f"; within the {' and the '.join(within)}" if within else ""
        )
    if not within:  # significant and above the margin, yet too noisy to say it is
        within.append(f"{ev.margin_text} within its interval")
    return PASS, f"significant, but within the {' and the '.join(within)}"


# ---------------------------------------------------------------- latency


def _compare_latency(
    base: Comparison, rows_b: Any, rows_c: Any, th: GateThresholds, rng: Any
) -> Comparison:
    pct = LATENCY_PERCENTILES[base.metric]
    cb, cc = _window_counts(rows_b), _window_counts(rows_c)
    base = replace(base, windows=(len(cb), len(cc)))
    if why := _too_few(base, base.windows, th, "successful requests"):
        return replace(base, reason=why)
    values, mb, mc = _common_grid(cb, cc)
    q_b = float(_quantile_rows(mb.sum(axis=0, keepdims=True), values, pct)[0]) / 1000
    q_c = float(_quantile_rows(mc.sum(axis=0, keepdims=True), values, pct)[0]) / 1000
    p = _mann_whitney_greater(_quantile_rows(mc, values, pct), _quantile_rows(mb, values, pct))
    ci = _wider(
        *(
            _interval(
                draw(mc, values, pct, th.bootstrap_samples, rng)
                / draw(mb, values, pct, th.bootstrap_samples, rng)
                - 1,
                th.confidence,
            )
            for draw in (_window_bootstrap_quantiles, _request_bootstrap_quantiles)
        )
    )
    effect, delta = q_c / q_b - 1, q_c - q_b
    evidence = _Evidence(
        p_value=p,
        effect=effect,
        ci=ci,
        limit=base.limit,
        z=_z(th.confidence),
        margin_text=f"{base.limit * 100:g}% margin",
        floor_text=f"{th.min_effect_ms:g} ms noise floor",
        above_floor=delta > th.min_effect_ms,
        upper_above_floor=q_b * ci[1] > th.min_effect_ms,
    )
    outcome, why = _judge(evidence, th.alpha, th.min_margin_se)
    numbers = (
        f"{q_b:.3g} → {q_c:.3g} ms ({effect * 100:+.1f}%, {th.confidence:.0%} interval "
        f"{ci[0] * 100:+.1f}%..{ci[1] * 100:+.1f}%), p={p:.2g} over {base.windows[0]}+"
        f"{base.windows[1]} windows"
    )
    return replace(
        base,
        outcome=outcome,
        reason=f"{numbers}: {why}",
        baseline=round(q_b, 3),
        current=round(q_c, 3),
        delta=round(delta, 3),
        effect=round(effect, 4),
        effect_ci=(round(ci[0], 4), round(ci[1], 4)),
        p_value=p,
    )


def _window_counts(rows: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per steady window with successful requests: (values µs, counts) of its histogram."""
    out = []
    for _, group in rows.groupby("window_index", sort=True):
        parts = [_decode(text) for text in group["hdr"] if isinstance(text, str | bytes) and text]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            continue
        values = np.concatenate([p[0] for p in parts])
        counts = np.concatenate([p[1] for p in parts])
        uniq, inverse = np.unique(values, return_inverse=True)
        out.append((uniq, np.bincount(inverse, weights=counts)))
    return out


# bucket index -> reported value, per histogram layout (a memo: pure, computed once)
_VALUE_OF_INDEX: dict[tuple[int, ...], np.ndarray] = {}


def _decode(text: str | bytes) -> tuple[np.ndarray, np.ndarray]:
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram.decode(text.encode("ascii") if isinstance(text, str) else text)
    counts = np.ctypeslib.as_array(h.counts)
    idx = np.flatnonzero(counts)
    key = (h.counts_len, h.sub_bucket_half_count_magnitude, h.unit_magnitude, h.sub_bucket_count)
    table = _VALUE_OF_INDEX.get(key)
    if table is None:
        # value reported for a bucket: HdrHistogram.get_value_at_percentile's choice
        table = np.array(
            [
                h.get_highest_equivalent_value(h.get_value_from_index(i))
                for i in range(h.counts_len)
            ],
            dtype=np.float64,
        )
        _VALUE_OF_INDEX[key] = table
    return table[idx], counts[idx].astype(np.float64)


def _common_grid(
    cb: list[tuple[np.ndarray, np.ndarray]], cc: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both runs' windows as dense (windows × values) count matrices on one value grid."""
    values = np.unique(np.concatenate([v for v, _ in cb + cc]))

    def dense(windows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        m = np.zeros((len(windows), len(values)))
        for row, (v, c) in enumerate(windows):
            m[row, np.searchsorted(values, v)] = c
        return m

    return values, dense(cb), dense(cc)


def _quantile_rows(counts: np.ndarray, values: np.ndarray, percentile: float) -> np.ndarray:
    """Row-wise percentile of a (k × values) count matrix, as HdrHistogram computes it."""
    totals = counts.sum(axis=1)
    targets = np.maximum(np.floor(percentile * totals / 100 + 0.5), 1)
    first = (np.cumsum(counts, axis=1) < targets[:, None]).sum(axis=1)
    return values[np.minimum(first, len(values) - 1)]


def _window_bootstrap_quantiles(
    windows: np.ndarray, values: np.ndarray, percentile: float, samples: int, rng: Any
) -> np.ndarray:
    """The step percentile of ``samples`` resamples of the windows, with replacement."""
    n = len(windows)
    picks = rng.multinomial(n, np.full(n, 1 / n), size=samples).astype(np.float64)
    cum = picks @ np.cumsum(windows, axis=1)  # cumulative counts of each merged resample
    targets = np.maximum(np.floor(percentile * cum[:, -1] / 100 + 0.5), 1)
    first = (cum < targets[:, None]).sum(axis=1)
    return values[np.minimum(first, len(values) - 1)]


def _request_bootstrap_quantiles(
    windows: np.ndarray, values: np.ndarray, percentile: float, samples: int, rng: Any
) -> np.ndarray:
    """The step percentile of ``samples`` resamples of the requests, as if independent.

    The k-th smallest of N resampled requests is the empirical quantile of the
    k-th smallest of N uniforms, which is Beta(k, N - k + 1): drawn directly.
    """
    merged = windows.sum(axis=0)
    total = merged.sum()
    target = max(np.floor(percentile * total / 100 + 0.5), 1)
    u = rng.beta(target, total - target + 1, size=samples)
    first = np.searchsorted(np.cumsum(merged) / total, u, side="left")
    return values[np.minimum(first, len(values) - 1)]


def _window_bootstrap_sums(windows: np.ndarray, samples: int, rng: Any) -> np.ndarray:
    """Column sums of ``samples`` resamples (with replacement) of the windows' rows."""
    n = len(windows)
    picks = rng.multinomial(n, np.full(n, 1 / n), size=samples).astype(np.float64)
    return picks @ windows


def _resample_failures(windows: np.ndarray, samples: int, rng: Any) -> np.ndarray:
    """(requests, failures) with failures redrawn request by request (binomial)."""
    requests, failures = windows.sum(axis=0)
    drawn = rng.binomial(int(requests), failures / requests, size=samples)
    return np.column_stack([np.full(samples, requests), drawn]).astype(np.float64)


def _wider(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Each end from whichever interval reaches further: the more cautious of the two."""
    return min(a[0], b[0]), max(a[1], b[1])


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _mann_whitney_greater(current: np.ndarray, baseline: np.ndarray) -> float:
    """One-sided p-value that ``current`` is stochastically greater than ``baseline``."""
    current, baseline = np.asarray(current, float), np.asarray(baseline, float)
    if np.ptp(np.concatenate([current, baseline])) == 0:
        return 1.0  # all equal: no evidence of any shift
    try:
        from scipy.stats import mannwhitneyu
    except ImportError:
        raise LabcapError(
            "scipy is not installed: the gate's statistical test needs it (pip install scipy)"
        ) from None
    return float(mannwhitneyu(current, baseline, alternative="greater").pvalue)


# ---------------------------------------------------------------- errors


def _compare_errors(
    base: Comparison, rows_b: Any, rows_c: Any, th: GateThresholds, rng: Any
) -> Comparison:
    wb, wc = _window_errors(rows_b), _window_errors(rows_c)
    base = replace(base, windows=(len(wb), len(wc)))
    if why := _too_few(base, base.windows, th, "requests"):
        return replace(base, reason=why)
    e_b = 100 * wb[:, 1].sum() / wb[:, 0].sum()
    e_c = 100 * wc[:, 1].sum() / wc[:, 0].sum()
    p = _mann_whitney_greater(100 * wc[:, 1] / wc[:, 0], 100 * wb[:, 1] / wb[:, 0])
    intervals = []
    for resample in (_window_bootstrap_sums, _resample_failures):
        boot_b = resample(wb, th.bootstrap_samples, rng)
        boot_c = resample(wc, th.bootstrap_samples, rng)
        draws = 100 * (boot_c[:, 1] / boot_c[:, 0] - boot_b[:, 1] / boot_b[:, 0])
        intervals.append(_interval(draws, th.confidence))
    ci = _wider(*intervals)
    test = f"p={p:.2g} over {base.windows[0]}+{base.windows[1]} windows"
    return _error_verdict(base, th, (e_b, e_c), p, ci, "interval", test)


def _error_verdict(
    base: Comparison,
    th: GateThresholds,
    rates: tuple[float, float],
    p: float,
    ci: tuple[float, float],
    interval: str,
    test: str,
) -> Comparison:
    """An error-rate comparison judged: the change in points against its margin (two runs
    or a paired run; ``interval`` and ``test`` name how ``ci`` and ``p`` were had)."""
    e_b, e_c = rates
    delta = e_c - e_b
    margin = f"{base.limit:g}-point margin"
    evidence = _Evidence(p, delta, ci, base.limit, _z(th.confidence), margin)
    outcome, why = _judge(evidence, th.alpha, th.min_margin_se)
    numbers = (
        f"{e_b:.3g}% → {e_c:.3g}% failed ({delta:+.2f} points, {th.confidence:.0%} {interval} "
        f"{ci[0]:+.2f}..{ci[1]:+.2f}), {test}"
    )
    return replace(
        base,
        outcome=outcome,
        reason=f"{numbers}: {why}",
        baseline=round(e_b, 4),
        current=round(e_c, 4),
        delta=round(delta, 4),
        effect=round(delta, 4),
        effect_ci=(round(ci[0], 4), round(ci[1], 4)),
        p_value=p,
    )


def _window_errors(rows: Any) -> np.ndarray:
    """(requests, failures) per steady window that saw any request."""
    sums = rows.groupby("window_index", sort=True)[["requests", "failures"]].sum()
    sums = sums[sums["requests"] > 0]
    return sums.to_numpy(dtype=np.float64).reshape(-1, 2)


__all__ = [
    "Comparison",
    "GateResult",
    "GateThresholds",
    "MaxRegression",
    "compare_paths",
    "compare_runs",
    "incomparable_reasons",
    "parse_max_regression",
    "thresholds_from_options",
    "EXIT_CODES",
    "GATE_METRICS",
]
