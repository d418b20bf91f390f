"""The CI gate on a paired run (``labcap run --host A --candidate-host B``).

Both sides were loaded in the same windows, half the users on each, so whatever the
machine did in a window (a noisy neighbour, a CPU frequency change, a GC pause of the
generator) hit both sides alike. The gate therefore decides from the **per-window
differences**, which cancel that drift, instead of comparing two runs made minutes apart
(duet benchmarking, Bulej et al., ICPE 2020).

Per step and endpoint, over the steady windows in which both sides have data:

* **significance** — a one-sided Wilcoxon signed-rank test on the per-window log ratios
  ln(candidate percentile / baseline percentile) (latency), or on the per-window
  differences of the failed share (``error_pct``): is the candidate's side larger?
* **effect** — as in the two-run gate: the step percentile of each side from its merged
  HDR histograms, candidate / baseline - 1 (latency), or the difference of the failed
  shares in points;
* **interval** — a *paired* bootstrap: windows are resampled, each drawn window brings
  both of its sides, and the effect is recomputed on each resample.

The decision rules (significance, margin, noise floor, a margin narrower than
``min_margin_se`` standard errors is inconclusive) are the two-run gate's, so a paired
gate and a two-run gate read the same way; only the evidence is paired.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from labcap.errors import LabcapError
from labcap.model import BASELINE_SIDE, CANDIDATE_SIDE
from labcap.planner.gate import (
    EXIT_CODES,
    INCONCLUSIVE,
    LATENCY_PERCENTILES,
    PASS,
    REGRESSION,
    Comparison,
    GateResult,
    GateThresholds,
    _common_grid,
    _error_verdict,
    _Evidence,
    _interval,
    _judge,
    _quantile_rows,
    _steady,
    _too_few,
    _window_counts,
    _z,
)
from labcap.store import RunDir

METHOD = (
    "paired run, per step and endpoint over the steady windows where both sides have data: "
    "one-sided Wilcoxon signed-rank test on the per-window log ratios of the percentile "
    "(error_pct: differences of the failed share), p < alpha; effect from each side's merged "
    "HDR histograms above its margin, latency slowdown above the min_effect_ms noise floor; "
    "interval: paired window bootstrap; a margin under min_margin_se standard errors is "
    "inconclusive unless the whole interval lies above it"
)


def is_paired(path: str | Path) -> bool:
    """Whether ``path`` is a run directory of a paired run."""
    return bool(RunDir.open(path).sides())


def gate_paired(path: str | Path, thresholds: GateThresholds | None = None) -> GateResult:
    """The gate on one paired run: candidate side against baseline side."""
    th = thresholds or GateThresholds()
    run = RunDir.open(path)
    if set(run.sides()) != {BASELINE_SIDE, CANDIDATE_SIDE}:
        raise LabcapError(
            f"{path}: not a paired run (labcap run --host A --candidate-host B writes one); "
            "to compare two runs: labcap gate BASELINE CURRENT"
        )
    m = run.read_manifest()
    reasons = []
    if m.status != "complete":
        why = f" ({'; '.join(m.status_reasons)})" if m.status_reasons else ""
        reasons.append(f"the paired run is {m.status}{why}")
    rng = np.random.default_rng(th.seed)
    steady = _steady(run.windows())
    comparisons: list[Comparison] = []
    for step in m.plan.steps:
        rows = steady[steady["step_index"] == step.index]
        comparisons += _compare_step(step.index, step.users, rows, th, rng)
    outcomes = {c.outcome for c in comparisons}
    if REGRESSION in outcomes:
        outcome = REGRESSION
    elif INCONCLUSIVE in outcomes or reasons or not comparisons:
        outcome = INCONCLUSIVE
    else:
        outcome = PASS
    return GateResult(
        baseline=f"{run.path} ({BASELINE_SIDE} side)",
        current=f"{run.path} ({CANDIDATE_SIDE} side)",
        outcome=outcome,
        exit_code=EXIT_CODES[outcome],
        reasons=tuple(reasons),
        method=METHOD,
        thresholds=th,
        comparisons=tuple(comparisons),
    )


def _compare_step(
    index: int, users: int, rows: Any, th: GateThresholds, rng: Any
) -> list[Comparison]:
    endpoints = sorted(set(rows["endpoint"])) or ["*"]
    out = []
    for endpoint in endpoints:
        ep = rows[rows["endpoint"] == endpoint]
        ep_b, ep_c = ep[ep["side"] == BASELINE_SIDE], ep[ep["side"] == CANDIDATE_SIDE]
        missing = [
            role for role, r in ((BASELINE_SIDE, ep_b), (CANDIDATE_SIDE, ep_c)) if not len(r)
        ]
        for metric, limit in th.limits_for(str(endpoint)):
            unit = "%" if metric == "error_pct" else "ms"
            base = Comparison(index, users, str(endpoint), metric, INCONCLUSIVE, "", unit, limit)
            if missing:
                what = "the step has no steady windows" if endpoint == "*" else "no requests"
                reason = f"{what} on the {' or '.join(missing)} side (step {index + 1})"
                out.append(replace(base, reason=reason))
            elif metric == "error_pct":
                out.append(_paired_errors(base, ep_b, ep_c, th, rng))
            else:
                out.append(_paired_latency(base, ep_b, ep_c, th, rng))
    return out


def _paired_windows(rows_b: Any, rows_c: Any) -> tuple[list[Any], list[Any]]:
    """Both sides' (values, counts) for the windows where both have successful requests."""
    wb = dict(_indexed_counts(rows_b))
    wc = dict(_indexed_counts(rows_c))
    common = sorted(set(wb) & set(wc))
    return [wb[i] for i in common], [wc[i] for i in common]


def _indexed_counts(rows: Any) -> list[tuple[int, Any]]:
    out = []
    for index, group in rows.groupby("window_index", sort=True):
        counts = _window_counts(group)
        if counts:
            out.append((int(index), counts[0]))
    return out


def _signed_rank_greater(diffs: np.ndarray) -> float:
    """One-sided p-value that the paired differences are centred above zero."""
    diffs = np.asarray(diffs, float)
    if not len(diffs) or np.all(diffs == 0):
        return 1.0
    try:
        from scipy.stats import wilcoxon
    except ImportError:
        raise LabcapError(
            "scipy is not installed: the gate's statistical test needs it (pip install scipy)"
        ) from None
    return float(wilcoxon(diffs, alternative="greater", zero_method="zsplit").pvalue)


def _paired_latency(
    base: Comparison, rows_b: Any, rows_c: Any, th: GateThresholds, rng: Any
) -> Comparison:
    pct = LATENCY_PERCENTILES[base.metric]
    cb, cc = _paired_windows(rows_b, rows_c)
    base = replace(base, windows=(len(cb), len(cc)))
    if why := _too_few(base, base.windows, th, "successful requests on both sides"):
        return replace(base, reason=why)
    values, mb, mc = _common_grid(cb, cc)
    q_b = float(_quantile_rows(mb.sum(axis=0, keepdims=True), values, pct)[0]) / 1000
    q_c = float(_quantile_rows(mc.sum(axis=0, keepdims=True), values, pct)[0]) / 1000
    ratios = np.log(_quantile_rows(mc, values, pct) / _quantile_rows(mb, values, pct))
    p = _signed_rank_greater(ratios)
    n = len(mb)
    picks = rng.multinomial(n, np.full(n, 1 / n), size=th.bootstrap_samples).astype(float)
    boot_b = _merged_quantiles(picks @ np.cumsum(mb, axis=1), values, pct)
    boot_c = _merged_quantiles(picks @ np.cumsum(mc, axis=1), values, pct)
    ci = _interval(boot_c / boot_b - 1, th.confidence)
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
        f"{q_b:.3g} → {q_c:.3g} ms ({effect * 100:+.1f}%, {th.confidence:.0%} paired interval "
        f"{ci[0] * 100:+.1f}%..{ci[1] * 100:+.1f}%), signed-rank p={p:.2g} over {n} paired "
        "windows"
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


def _merged_quantiles(cum: np.ndarray, values: np.ndarray, pct: float) -> np.ndarray:
    """The percentile of each row of cumulative counts (one bootstrap resample a row)."""
    targets = np.maximum(np.floor(pct * cum[:, -1] / 100 + 0.5), 1)
    first = (cum < targets[:, None]).sum(axis=1)
    return values[np.minimum(first, len(values) - 1)]


def _paired_errors(
    base: Comparison, rows_b: Any, rows_c: Any, th: GateThresholds, rng: Any
) -> Comparison:
    wb, wc = _indexed_errors(rows_b), _indexed_errors(rows_c)
    common = sorted(set(wb) & set(wc))
    eb = np.array([wb[i] for i in common]).reshape(-1, 2)
    ec = np.array([wc[i] for i in common]).reshape(-1, 2)
    base = replace(base, windows=(len(eb), len(ec)))
    if why := _too_few(base, base.windows, th, "requests on both sides"):
        return replace(base, reason=why)
    e_b = 100 * eb[:, 1].sum() / eb[:, 0].sum()
    e_c = 100 * ec[:, 1].sum() / ec[:, 0].sum()
    p = _signed_rank_greater(100 * ec[:, 1] / ec[:, 0] - 100 * eb[:, 1] / eb[:, 0])
    n = len(eb)
    picks = rng.multinomial(n, np.full(n, 1 / n), size=th.bootstrap_samples).astype(float)
    sb, sc = picks @ eb, picks @ ec
    ci = _interval(100 * (sc[:, 1] / sc[:, 0] - sb[:, 1] / sb[:, 0]), th.confidence)
    test = f"signed-rank p={p:.2g} over {n} paired windows"
    return _error_verdict(base, th, (e_b, e_c), p, ci, "paired interval", test)


def _indexed_errors(rows: Any) -> dict[int, tuple[float, float]]:
    sums = rows.groupby("window_index", sort=True)[["requests", "failures"]].sum()
    sums = sums[sums["requests"] > 0]
    return {int(i): (float(r.requests), float(r.failures)) for i, r in sums.iterrows()}


__all__ = ["METHOD", "gate_paired", "is_paired"]
