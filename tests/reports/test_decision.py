"""The run report states the recommendation first, from the inputs given to `report` or saved
by `plan` beside the run, with its reasons under the action each supports."""

from __future__ import annotations

import html as htmllib
import json
import re

import pytest

from tests.golden.runs import LIMIT_SLOS, LIMIT_STEPS
from tests.support.cli import labcap
from tests.support.runs import synthetic_run


@pytest.fixture
def limit_run(tmp_path, recorded_run):
    # the golden capacity run: within SLO up to 20 users, past it at 40
    return recorded_run(tmp_path / "limit", LIMIT_STEPS, slos=LIMIT_SLOS, step_s=10)


def _section(page: str, ident: str) -> str:
    start = page.index(f'<section id="{ident}">')
    return page[start : page.index("</section>", start)]


def _text(fragment: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_report_with_expected_users_states_the_recommendation_first(limit_run):
    r = labcap("report", limit_run, "--expected-users", "30")
    assert r.returncode == 0, r.stderr
    page = (limit_run / "report.html").read_text()
    assert page.index('id="recommendation"') < page.index('class="chart"')
    plan = json.loads(labcap("plan", limit_run, "--expected-users", "30", "--json").stdout)
    rec = plan["recommendation"]
    section = _section(page, "recommendation")
    assert f'data-action="{rec["action"]}"' in section
    text = _text(section)
    low, high = plan["capacity"]["band"]  # uncalibrated: hub.login's 20-user p95 is a breach
    assert f"Capacity: {low} users at SLO (band {low} – {high} users)" in text
    assert "Binding constraint: latency" in text and f"at {high} users" in text
    assert "30 expected users" in text and "given to labcap report" in text
    # each reason listed once, under the action its rule supports
    for reason in rec["reasons"]:
        lists = re.findall(r'<ul data-action="([^"]+)">(.*?)</ul>', section, re.S)
        holders = [a for a, items in lists if f"<code>{reason['rule']}</code>" in items]
        assert holders == [reason["action"]], reason["rule"]


def test_report_reads_the_inputs_plan_saved_beside_the_run(limit_run):
    assert labcap("plan", limit_run, "--expected-users", "15").returncode == 0
    assert labcap("report", limit_run).returncode == 0
    text = _text(_section((limit_run / "report.html").read_text(), "recommendation"))
    assert "15 expected users" in text and "saved by labcap plan" in text
    # an option given to report wins over the saved one
    assert labcap("report", limit_run, "--expected-users", "60").returncode == 0
    text = _text(_section((limit_run / "report.html").read_text(), "recommendation"))
    assert "60 expected users" in text and "15 expected" not in text


def test_without_inputs_the_report_says_how_to_give_them(limit_run):
    assert labcap("report", limit_run).returncode == 0
    text = _text(_section((limit_run / "report.html").read_text(), "recommendation"))
    assert "insufficient-data" in text and "--expected-users" in text


def test_a_capacity_below_the_first_step_reads_less_than_never_zero(tmp_path):
    run = synthetic_run(tmp_path / "tight", 1, slos=("p95_ms=1", "error_pct=1"))
    assert labcap("report", run, "--expected-users", "5").returncode == 0
    page = (run / "report.html").read_text()
    rec = _section(page, "recommendation")
    mine = rec[: rec.index('<div id="reasons">')]  # the planner's own reason texts aside
    assert '<span id="capacity">&lt; 5 users at SLO</span>' in mine
    assert "&lt; 5 users at SLO" in _section(page, "summary")
    for text in (_text(mine), _text(_section(page, "summary"))):
        assert not re.search(r"(?<![\d.<])0 users|band 0", text), text


def test_a_lower_bound_keeps_its_sign(tmp_path):
    run = synthetic_run(tmp_path / "easy", 1)
    assert labcap("report", run).returncode == 0
    assert "≥ 10 users at SLO" in _text(_section((run / "report.html").read_text(), "summary"))


@pytest.mark.parametrize(
    "args, message",
    [
        (("--expected-users", "many"), "not a positive whole number"),
        (("--growth-per-month", "-200"), "not a percentage"),
        (("--policy", "/nonexistent/policy.yaml"), "no such file"),
    ],
)
def test_bad_decision_inputs_are_one_line(limit_run, args, message):
    r = labcap("report", limit_run, *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1


def test_decision_inputs_do_not_apply_to_a_comparison(limit_run, tmp_path):
    r = labcap("report", limit_run, limit_run, "--expected-users", "5", "-o", tmp_path / "c.html")
    assert r.returncode == 2 and "one run's report" in r.stderr


def test_no_capacity_figure_claims_no_lower_bound(tmp_path):
    run = synthetic_run(tmp_path / "down", 1, error_pct=100.0)  # nothing succeeded
    assert labcap("report", run, "--expected-users", "5").returncode == 0
    rec = _section((run / "report.html").read_text(), "recommendation")
    text = _text(rec[: rec.index('<div id="reasons">')])  # the planner's reason texts aside
    assert "Capacity: no capacity figure" in text and "lower bound" not in text


def test_the_steps_table_names_the_slowest_endpoint_not_a_mix(limit_run):
    assert labcap("report", limit_run).returncode == 0
    steps = _text(_section((limit_run / "report.html").read_text(), "steps"))
    assert "p95 ms (all)" not in steps and "highest endpoint p95" in steps
    # at 40 users hub.login (150-240 ms) is slower than mlflow.search (70-110 ms)
    assert re.search(r"\b40 \d+ fail .* ms \(hub\.login\)", steps)
