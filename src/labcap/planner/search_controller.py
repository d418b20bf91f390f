"""The adaptive search's controller: which user count to probe next, and when a probe's
verdict is clear. It runs inside the load engine (``--users auto``), judging each window's
data as it closes; :mod:`labcap.measure.search` runs the search and assembles its run
directory. See that module for the method.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcap.histograms import count_above, histogram_summary, new_histogram
from labcap.slo import Slo

HARD_RATIO = 3.0  # one steady window this far over an SLO ends a probe at once

METHOD = (
    "adaptive: start at start_users, multiply by factor (factor^2 after a wide-margin pass) "
    "while every SLO holds, then narrow the bracket between the last passing and first "
    "failing user count until they are within resolution (relative) of each other, probing "
    "the knee estimated by the operational laws (N* = X_max x N/X) when it falls inside, "
    "else the midpoint; each probe is one step (settling, then steady windows), held until "
    "its verdict is clear: stopped as a fail when two steady windows in a row break an SLO "
    "by clear_fail_ratio or more, or one by 3x, or when its steady data breaks an SLO by an "
    "exact binomial test at fail_confidence; stopped as a pass when its steady data meets "
    "every SLO within 1/clear_fail_ratio of its limit over min_pass_requests requests"
)


@dataclass(frozen=True)
class SearchSettings:
    max_users: int
    start_users: int | None = None  # default: max_users / 8, at least 1
    factor: float = 2.0
    resolution: float = 0.10
    clear_fail_ratio: float = 1.5
    min_window_requests: int = 20  # error_pct of a window with fewer is not judged early
    min_pass_requests: int = 20  # a probe ends early as a wide-margin pass on no fewer
    fail_confidence: float = 0.999  # ... and as a fail on a binomial test at this level

    def first(self) -> int:
        return max(1, min(self.max_users, self.start_users or self.max_users // 8))


def next_users(
    settings: SearchSettings,
    passed: int | None,
    failed: int | None,
    *,
    wide_margin: bool = False,
    estimate: float | None = None,
) -> int | None:
    """The next user count to probe, or None when the search is done.

    ``wide_margin``: the last probe met every SLO within 1/clear_fail_ratio of its limit
    (grow by factor² instead of factor). ``estimate``: the knee by the operational laws
    (users), used to narrow the bracket once a count has failed.
    """
    if failed is None:
        if passed is None:
            return settings.first()
        if passed >= settings.max_users:
            return None
        factor = settings.factor**2 if wide_margin else settings.factor
        return min(settings.max_users, max(passed + 1, math.ceil(passed * factor)))
    low = passed or 0
    if failed - low <= max(1, settings.resolution * low):
        return None
    middle = (low + failed) // 2
    if estimate is None or not passed:
        return middle
    # Never closer to the passing count than one resolution step: a probe there either
    # closes the bracket (it fails) or moves the passing count up by a full step (it passes);
    # an estimate just above the passing count would spend a probe on one or two users.
    step_up = low + max(1, math.floor(settings.resolution * low))
    guess = max(round(estimate), step_up)
    if guess >= failed:
        return middle
    return guess


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


def _by_endpoint(
    series: dict[tuple[str, str], list[Any]],
) -> tuple[dict[str, list[Any]], int, int]:
    """One probe's series merged per endpoint ([histogram, requests, failures]), and the
    requests and failures over all of them."""

    by_ep: dict[str, list[Any]] = {}
    for (name, _method), (hist, req, fail) in series.items():
        acc = by_ep.setdefault(name, [new_histogram(), 0, 0])
        acc[0].add(hist)
        acc[1] += req
        acc[2] += fail
    req = sum(a[1] for a in by_ep.values())
    fail = sum(a[2] for a in by_ep.values())
    return by_ep, req, fail


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (summed from k up until the terms vanish)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    log_c = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    term = math.exp(log_c + k * lp + (n - k) * lq)
    total = term
    for i in range(k, n):  # pmf(i + 1) = pmf(i) (n - i) / (i + 1) p / q
        term *= (n - i) / (i + 1) * p / (1 - p)
        total += term
        if term < total * 1e-12 and i > n * p:
            break
    return min(1.0, total)


def confident_breach(
    series: dict[tuple[str, str], list[Any]], slos: tuple[Slo, ...], confidence: float
) -> str | None:
    """A reason when one probe's steady data so far shows an SLO broken beyond chance.

    A percentile SLO ``pQ_ms=T`` holds when at most (100 - Q) % of requests take
    longer than T. If k of n took surely longer (their HDR bucket lies wholly above
    T), the SLO is broken with ``confidence`` when P(Binomial(n, 1 - Q/100) >= k) <
    1 - confidence: even a true share of exactly (100 - Q) % would rarely give k.
    ``error_pct=E`` is the same test on the failed requests; ``max_ms=T`` is broken
    for good by one request above T.
    """

    alpha = 1 - confidence
    by_ep, req, fail = _by_endpoint(series)
    own = {(s.endpoint, s.metric) for s in slos if s.endpoint}
    for slo in slos:
        if slo.metric == "error_pct":
            tail = binomial_tail(req, fail, slo.threshold / 100)
            if req and tail < alpha:
                return (
                    f"{fail} of {req} requests failed ({100 * fail / req:.1f} %), over "
                    f"{slo.expression} with {confidence:.1%} confidence"
                )
            continue
        for ep, (hist, _r, _f) in by_ep.items():
            if slo.endpoint not in (None, ep) or (slo.endpoint is None and (ep, slo.metric) in own):
                continue
            n = hist.get_total_count()
            above = count_above(hist, slo.threshold * 1000)
            if slo.metric == "max_ms":
                share = 0.0
            else:
                share = 1 - float(slo.metric[1:].removesuffix("_ms")) / 100
            if above and binomial_tail(n, above, share) < alpha:
                return (
                    f"{ep}: {above} of {n} requests took over {slo.threshold:g} ms, so "
                    f"{slo.expression} is broken with {confidence:.1%} confidence"
                )
    return None


def judge_series(
    series: dict[tuple[str, str], list[Any]], slos: tuple[Slo, ...], scale: float = 1.0
) -> bool:
    """Does one probe's steady data meet every SLO (each limit times ``scale``)?
    (capacity.check_step's rules.)"""

    by_ep, req, fail = _by_endpoint(series)
    if req == 0 or req == fail:
        return False  # nothing succeeded: no latency to judge
    own = {(s.endpoint, s.metric) for s in slos if s.endpoint}
    for slo in slos:
        if slo.metric == "error_pct":
            if 100 * fail / req > slo.threshold * scale:
                return False
            continue
        for ep, (hist, _r, _f) in by_ep.items():
            if slo.endpoint not in (None, ep) or (slo.endpoint is None and (ep, slo.metric) in own):
                continue
            value = histogram_summary(hist)[slo.metric.replace("_ms", "_us")]
            if value is None or value / 1000 > slo.threshold * scale:
                return False
        if slo.endpoint and slo.endpoint not in by_ep:
            return False
    return True


class SearchController:
    """Inside the load engine: picks each step's users, judges it, ends clear verdicts."""

    def __init__(self, settings: SearchSettings, slos: tuple[Slo, ...]) -> None:
        self.settings = settings
        self.slos = slos
        self.passed: int | None = None
        self.failed: int | None = None
        self.wide_margin = False
        self.probes: list[dict[str, Any]] = []
        # users -> (steady requests, steady seconds): the throughput each probe measured
        self.throughput: dict[int, tuple[int, float]] = {}
        self.watch = ClearFailWatch(slos, settings.clear_fail_ratio, settings.min_window_requests)
        self.hard = ClearFailWatch(slos, HARD_RATIO, settings.min_window_requests)
        self._soft_prev: int | None = None

    def knee_estimate(self) -> tuple[float, str] | None:
        """N* = X_max x C from the probes so far (users, and how it was reached)."""
        rates = {u: n / s for u, (n, s) in self.throughput.items() if s > 0 and n > 0}
        if not self.passed or self.passed not in rates:
            return None
        x_max = max(rates.values())
        cycle = self.passed / rates[self.passed]
        return x_max * cycle, (
            f"knee estimate {x_max * cycle:.1f} users = {x_max:.1f} req/s (the most any probe "
            f"carried) x {cycle:.2f} s cycle at {self.passed} users (N / X)"
        )

    def next_users(self) -> int | None:
        estimate = self.knee_estimate() if self.failed is not None else None
        users = next_users(
            self.settings, self.passed, self.failed, wide_margin=self.wide_margin,
            estimate=estimate[0] if estimate else None,
        )  # fmt: skip
        self._soft_prev = None
        if users is not None:
            self.probes.append(
                {"order": len(self.probes) + 1, "users": users, "verdict": None,
                 "stopped_early": "", "passed_early": "", "chosen": self._why(users, estimate),
                 "started_s": None, "wall_s": None, "steady_s": None}
            )  # fmt: skip
        return users

    def _why(self, users: int, estimate: tuple[float, str] | None) -> str:
        if self.passed is None and self.failed is None:
            return "first probe"
        if self.failed is None:
            grow = self.settings.factor ** (2 if self.wide_margin else 1)
            margin = " (the last probe passed by a wide margin)" if self.wide_margin else ""
            return f"grow x{grow:g} from {self.passed}{margin}"
        middle = ((self.passed or 0) + self.failed) // 2
        if estimate and users != middle:
            if round(estimate[0]) < users:
                return (
                    f"{estimate[1]}: within {self.settings.resolution:.0%} of the passing "
                    f"count, so one resolution step above it"
                )
            return estimate[1]
        return f"midpoint of {self.passed or 0} (pass) and {self.failed} (fail)"

    def clear_fail(
        self,
        window: Any,
        records: list[dict[str, Any]],
        series: dict[tuple[str, str], list[Any]] | None = None,
    ) -> str | None:
        """A reason to end the probe: one steady window over HARD_RATIO x an SLO, or two
        in a row over clear_fail_ratio x (one noisy window on a busy machine is not enough),
        or the probe's steady data so far (``series``, at least min_pass_requests requests)
        breaking an SLO by the binomial test of ``confident_breach``."""
        if window.settling or not self.probes or self.probes[-1]["stopped_early"]:
            return None
        marked = {"window_index": window.index}
        soft = next((w for r in records if (w := self.watch._judge({**r, **marked}))), None)
        hard = next((w for r in records if (w := self.hard._judge({**r, **marked}))), None)
        previous, self._soft_prev = self._soft_prev, window.index if soft else None
        why = hard or (soft if soft and previous == window.index - 1 else None)
        enough = series and sum(a[1] for a in series.values()) >= self.settings.min_pass_requests
        if not why and enough and self.slos:
            breach = confident_breach(series, self.slos, self.settings.fail_confidence)
            why = f"window {window.index}: {breach}" if breach else None
        if why:
            self.probes[-1]["stopped_early"] = why
        return why

    def clear_pass(self, window: Any, series: dict[tuple[str, str], list[Any]]) -> str | None:
        """A reason to end the probe as a pass: its steady data so far (``series``) meets
        every SLO within 1/clear_fail_ratio of its limit over min_pass_requests or more."""
        if window.settling or not self.probes or not self.slos:
            return None
        probe = self.probes[-1]
        if probe["stopped_early"] or probe["passed_early"]:
            return None
        requests = sum(acc[1] for acc in series.values())
        if requests < self.settings.min_pass_requests:
            return None
        ratio = self.settings.clear_fail_ratio
        if not judge_series(series, self.slos, scale=1 / ratio):
            return None
        why = (
            f"window {window.index}: every SLO met within 1/{ratio:g} of its limit over "
            f"{requests} requests"
        )
        probe["passed_early"] = why
        return why

    def step_result(self, series: dict[tuple[str, str], list[Any]]) -> None:
        probe = self.probes[-1]
        ok = not probe["stopped_early"] and judge_series(series, self.slos)
        probe["verdict"] = "pass" if ok else "fail"
        steady_s = probe.get("steady_s") or 0.0
        requests = sum(acc[1] for acc in series.values())
        self.throughput[probe["users"]] = (requests, steady_s)
        # over the time it really ran (the steady windows after an early stop close empty)
        probe["rps"] = round(requests / steady_s, 3) if steady_s > 0 else 0.0
        self.wide_margin = bool(
            ok and judge_series(series, self.slos, 1 / self.settings.clear_fail_ratio)
        )
        if ok:
            self.passed = probe["users"]
        else:
            self.failed = probe["users"]


def max_probes(settings: SearchSettings) -> int:
    """An upper bound on the probes the search can take (the plan's step count)."""
    grow = math.ceil(math.log(settings.max_users / settings.first(), settings.factor)) + 1
    return max(1, grow + math.ceil(math.log2(settings.max_users + 1)) + 1)
