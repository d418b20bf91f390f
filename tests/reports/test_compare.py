"""The comparison's figures: same step in every run, per-endpoint p95, the gate's significance
on every latency delta, capacity bands that keep their "≥" and "< N"."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from labcap.planner.capacity import plan_capacity
from labcap.reports.compare import judge_capacity, reference_users, render_comparison
from labcap.reports.wording import capacity_text
from labcap.store import RunDir
from tests.support.runs import synthetic_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    return {
        "base": synthetic_run(root / "base", 1),
        "same": synthetic_run(root / "same", 2),
        # hub.login 40 % slower, mlflow.search unchanged
        "slow": synthetic_run(root / "slow", 3, scale={"hub.login": 1.4, "mlflow.search": 1.0}),
        "thin": synthetic_run(root / "thin", 4, step_s=3),  # 2 steady windows a step
    }


def _deltas(html: str) -> list[dict[str, str]]:
    out = []
    for m in re.finditer(r'<span class="delta (\w+)"([^>]*)><span class="delta-text">([^<]*)</span>'
                         r'<span class="mark" title="([^"]*)">([^<]*)</span>', html):  # fmt: skip
        attrs = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', m.group(2)))
        out.append({"tone": m.group(1), "text": m.group(3), "why": m.group(4),
                    "mark": m.group(5), **attrs})  # fmt: skip
    return out


def _latency(html: str, chart: str) -> list[dict[str, str]]:
    return [d for d in _deltas(html) if d.get("data-chart") == chart]


def test_a_slower_endpoint_is_a_significant_red_plus_the_other_is_not(runs):
    html = render_comparison([runs["base"], runs["slow"]])
    login = _latency(html, "latency-hub-login")
    search = _latency(html, "latency-mlflow-search")
    assert login and all(d["tone"] == "worse" and d["mark"] == "*" for d in login)
    assert all(d["text"].startswith("+") and "significantly slower" in d["why"] for d in login)
    assert search and all(d["tone"] == "neutral" and d["mark"] == "n.s." for d in search)
    assert "Mann-Whitney" in login[0]["why"]  # the gate's statistics, named
    assert "p95 (all)" not in html and "API latency (p95): hub.login" in html


def test_the_same_change_seen_from_the_other_side_is_a_significant_green_minus(runs):
    html = render_comparison([runs["slow"], runs["base"]])
    login = _latency(html, "latency-hub-login")
    assert login and all(d["tone"] == "better" and d["mark"] == "*" for d in login)
    assert all(d["text"].startswith("−") and "significantly faster" in d["why"] for d in login)


def test_a_rerun_of_the_same_deployment_is_not_coloured(runs):
    html = render_comparison([runs["base"], runs["same"]])
    latency = [d for d in _deltas(html) if d.get("data-kind") == "latency"]
    assert latency and all(d["tone"] == "neutral" for d in latency)


def test_too_few_windows_is_untested_and_uncoloured(runs):
    html = render_comparison([runs["base"], runs["thin"]])
    latency = [d for d in _deltas(html) if d.get("data-kind") == "latency"]
    assert latency and all(d["tone"] == "neutral" and d["mark"] == "untested" for d in latency)
    assert all("steady window" in d["why"] for d in latency)


def test_runs_with_other_steps_are_compared_only_where_they_share_one(tmp_path, runs):
    other = synthetic_run(tmp_path / "other", 5, users=(5, 20))
    plans = [plan_capacity(RunDir.open(p)) for p in (runs["base"], other)]
    assert reference_users(plans) == 5
    html = render_comparison([runs["base"], other])
    assert 'id="not-comparable"' in html and "No significance test" in html
    assert all(d["tone"] == "neutral" for d in _deltas(html))


def _plan(max_users, band, limit):
    return SimpleNamespace(max_users_at_slo=max_users, band=band, limit_reached=limit)


@pytest.mark.parametrize(
    "plan, text",
    [
        (_plan(40, (40, None), False), "≥ 40 users at SLO"),
        (_plan(20, (20, 40), True), "20 users at SLO"),
        (_plan(0, (0, 5), True), "< 5 users at SLO"),
        (_plan(1, (1, 5), True), "1 user at SLO"),
        (_plan(None, None, False), "no capacity figure"),
    ],
)
def test_capacity_wording_keeps_its_bounds_and_never_says_zero_users(plan, text):
    assert capacity_text(plan) == text


@pytest.mark.parametrize(
    "base, other, state",
    [
        (_plan(10, (10, None), False), _plan(0, (0, 5), True), "lower"),
        (_plan(5, (5, 10), True), _plan(10, (10, 20), True), "higher"),
        (_plan(10, (10, None), False), _plan(10, (10, None), False), "same"),
        (_plan(10, (10, 20), True), _plan(15, (15, 30), True), "same"),  # bands overlap
        (_plan(10, (10, None), False), _plan(20, (20, 40), True), "same"),  # ≥10 vs 20
    ],
)
def test_capacity_deltas_are_significant_only_when_the_bands_are_apart(base, other, state):
    assert judge_capacity(base, other).state == state
