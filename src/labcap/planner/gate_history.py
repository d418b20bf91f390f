"""The CI gate against a baseline history: several past runs of the baseline.

One stored baseline run says how the baseline measured once; its percentiles move from
run to run by more than the windows inside one run show (the machine drifts between the
baseline's time and the candidate's). With a directory of K past baseline runs (as asv
and Bencher keep) the gate estimates that between-run variation directly:

* per step and endpoint, each past run's step percentile (merged HDR histograms of its
  steady windows), on a log scale: x_1..x_K, their mean m and standard deviation s
  (which holds the within-run noise as well as the drift between runs);
* the candidate's x_c is judged as one more draw: effect exp(x_c - m) - 1; its standard
  error s * sqrt(1 + 1/K); significance from a one-sided t test with K - 1 degrees of
  freedom; the interval from the same t distribution (a prediction interval).
* ``error_pct`` the same way, on the runs' failed shares in points.

The decision rules (significance, margin, noise floor, a margin narrower than
``min_margin_se`` standard errors is inconclusive) are the two-run gate's.

**How many runs**: at least ``MIN_HISTORY_RUNS`` (5); fewer is a usage error. With
5 runs the t quantile is large (2.13 at 90 %), so the interval is wide; 10 or more
is what makes a 10 % margin resolvable when the runs' p95 moves by 3 % or less.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from labcap.errors import LabcapError
from labcap.planner.gate import (
    EXIT_CODES,
    INCONCLUSIVE,
    LATENCY_PERCENTILES,
    PASS,
    REGRESSION,
    Comparison,
    GateResult,
    GateThresholds,
    _Evidence,
    _judge,
    _steady,
    _window_counts,
    incomparable_reasons,
)
from labcap.store import MANIFEST, RunDir

MIN_HISTORY_RUNS = 5

METHOD = (
    "baseline history of K runs, per step and endpoint: each run's step percentile (merged "
    "HDR histograms of its steady windows) on a log scale; the candidate judged as one more "
    "run: one-sided t test with K-1 degrees of freedom (p < alpha), effect exp(x - mean) - 1 "
    "above its margin, standard error sd * sqrt(1 + 1/K); a margin under min_margin_se "
    "standard errors is inconclusive unless the whole interval lies above it"
)


def is_history(path: str | Path) -> bool:
    """A directory of run directories (no manifest of its own)."""
    p = Path(path)
    return p.is_dir() and not (p / MANIFEST).exists()


def history_runs(path: str | Path) -> list[RunDir]:
    """The complete runs of a history directory, oldest name first (LabcapError if too few)."""
    p = Path(path)
    runs = [RunDir.open(d) for d in sorted(p.iterdir()) if (d / MANIFEST).is_file()]
    complete = [r for r in runs if r.read_manifest().status == "complete"]
    if len(complete) < MIN_HISTORY_RUNS:
        raise LabcapError(
            f"{path}: a baseline history needs at least {MIN_HISTORY_RUNS} complete runs "
            f"(found {len(complete)} of {len(runs)} run directories)"
        )
    return complete


def gate_history(
    history: str | Path, current: str | Path, thresholds: GateThresholds | None = None
) -> GateResult:
    th = thresholds or GateThresholds()
    runs = history_runs(history)
    cur = RunDir.open(current)
    mc = cur.read_manifest()
    reasons = [f"current run is {mc.status}"] if mc.status != "complete" else []
    mismatch = sorted({r for run in runs for r in incomparable_reasons(run.read_manifest(), mc)})
    result = GateResult(
        baseline=f"{history} ({len(runs)} runs)",
        current=str(cur.path),
        outcome=INCONCLUSIVE,
        exit_code=EXIT_CODES[INCONCLUSIVE],
        reasons=tuple(reasons + mismatch),
        method=METHOD,
        thresholds=th,
    )
    if mismatch:
        return result
    past = [_steady(r.windows()) for r in runs]
    now = _steady(cur.windows())
    comparisons = []
    for step in mc.plan.steps:
        past_rows = [w[w["step_index"] == step.index] for w in past]
        rows = now[now["step_index"] == step.index]
        endpoints = sorted(set(rows["endpoint"]).union(*(set(p["endpoint"]) for p in past_rows)))
        for endpoint in endpoints or ["*"]:
            ep_past = [p[p["endpoint"] == endpoint] for p in past_rows]
            ep_now = rows[rows["endpoint"] == endpoint]
            for metric, limit in th.limits_for(str(endpoint)):
                unit = "%" if metric == "error_pct" else "ms"
                base = Comparison(
                    step.index, step.users, str(endpoint), metric, INCONCLUSIVE, "", unit, limit
                )
                comparisons.append(_compare(base, ep_past, ep_now, th))
    outcomes = {c.outcome for c in comparisons}
    if REGRESSION in outcomes:
        outcome = REGRESSION
    elif INCONCLUSIVE in outcomes or reasons or not comparisons:
        outcome = INCONCLUSIVE
    else:
        outcome = PASS
    return replace(
        result, outcome=outcome, exit_code=EXIT_CODES[outcome], comparisons=tuple(comparisons)
    )


def _run_value(rows: Any, metric: str, min_windows: int) -> float | None:
    """One run's step figure: the merged percentile in ms, or the failed share in %."""
    if metric == "error_pct":
        sums = rows.groupby("window_index")[["requests", "failures"]].sum()
        sums = sums[sums["requests"] > 0]
        if len(sums) < min_windows:
            return None
        return float(100 * sums["failures"].sum() / sums["requests"].sum())
    windows = _window_counts(rows)
    if len(windows) < min_windows:
        return None
    values = np.concatenate([v for v, _ in windows])
    counts = np.concatenate([c for _, c in windows])
    order = np.argsort(values, kind="stable")
    values, counts = values[order], counts[order]
    target = max(np.floor(LATENCY_PERCENTILES[metric] * counts.sum() / 100 + 0.5), 1)
    first = int((np.cumsum(counts) < target).sum())
    return float(values[min(first, len(values) - 1)]) / 1000


def _compare(base: Comparison, past: list[Any], now: Any, th: GateThresholds) -> Comparison:
    from scipy.stats import t as student_t

    xs = [_run_value(r, base.metric, th.min_windows) for r in past]
    xs = [x for x in xs if x is not None]
    x_now = _run_value(now, base.metric, th.min_windows)
    base = replace(base, windows=(len(xs), int(x_now is not None)))
    if x_now is None or len(xs) < MIN_HISTORY_RUNS:
        return replace(
            base,
            reason=f"{len(xs)} baseline runs and {int(x_now is not None)} current run with "
            f"{th.min_windows} steady windows of data (the history needs {MIN_HISTORY_RUNS})",
        )
    k = len(xs)
    latency = base.metric != "error_pct"
    scale = np.log if latency else (lambda v: np.asarray(v, float))
    logs = scale(np.array(xs))
    mean, sd = float(np.mean(logs)), float(np.std(logs, ddof=1))
    se = max(sd * np.sqrt(1 + 1 / k), 1e-12)
    diff = float(scale(np.array([x_now]))[0]) - mean
    p = float(student_t.sf(diff / se, k - 1))
    tq = float(student_t.ppf(0.5 + th.confidence / 2, k - 1))
    lo, hi = diff - tq * se, diff + tq * se
    q_b = float(np.exp(mean)) if latency else mean
    if latency:
        effect, ci = np.expm1(diff), (float(np.expm1(lo)), float(np.expm1(hi)))
        delta = x_now - q_b
        evidence = _Evidence(
            p, float(effect), ci, base.limit, tq, f"{base.limit * 100:g}% margin",
            floor_text=f"{th.min_effect_ms:g} ms noise floor",
            above_floor=delta > th.min_effect_ms,
            upper_above_floor=q_b * ci[1] > th.min_effect_ms,
        )  # fmt: skip
        numbers = (
            f"history {q_b:.3g} ms (±{sd * 100:.1f}% between {k} runs) → {x_now:.3g} ms "
            f"({effect * 100:+.1f}%, {th.confidence:.0%} interval {ci[0] * 100:+.1f}%.."
            f"{ci[1] * 100:+.1f}%), t-test p={p:.2g}"
        )
    else:
        effect, ci, delta = diff, (lo, hi), diff
        evidence = _Evidence(p, diff, ci, base.limit, tq, f"{base.limit:g}-point margin")
        numbers = (
            f"history {q_b:.3g}% failed (±{sd:.2f} points between {k} runs) → {x_now:.3g}% "
            f"({diff:+.2f} points), t-test p={p:.2g}"
        )
    outcome, why = _judge(evidence, th.alpha, th.min_margin_se)
    return replace(
        base,
        outcome=outcome,
        reason=f"{numbers}: {why}",
        baseline=round(q_b, 3),
        current=round(x_now, 3),
        delta=round(delta, 3),
        effect=round(float(effect), 4),
        effect_ci=(round(ci[0], 4), round(ci[1], 4)),
        p_value=p,
    )


__all__ = ["MIN_HISTORY_RUNS", "gate_history", "history_runs", "is_history"]
