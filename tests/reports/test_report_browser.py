"""Reports opened in a real headless Chromium: they load offline, without errors, and plot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from labcap.planner.capacity import plan_capacity
from labcap.reports.wording import capacity_text
from labcap.store import RunDir
from tests.reports.browser import chromium_path, visit
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parent.parent / "support"
PLOTS_RENDERED = (
    "Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".filter(d => d.querySelector('svg.main-svg .cartesianlayer .trace')).length"
)

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium not installed (scripts/bootstrap.sh installs it when run as root)",
)


RUN_OPTIONS = ("--scenario", str(SUPPORT / "locustfile_target.py"), "--users", "1,5",
               "--spawn-rate", "20", "--slo", "p95_ms=300", "--step-duration", "8s",
               "--settle", "1s", "--window", "1s", "--no-calibrate")  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three short real runs (7 steady windows a step, enough for the gate's test): a fast
    target; the same users against one worker with a 100 ms service time (at 5 users they
    queue for it: p95 about 450 ms, over the 300 ms SLO, so it holds fewer users); the fast
    target again."""
    base = tmp_path_factory.mktemp("runs")
    paths = {}
    with (
        loopback_server("target_server.py") as fast,
        loopback_server("queue_server.py", "1", "100") as queued,
    ):
        for name, url in (("before", fast), ("after", queued), ("again", fast)):
            out = base / name
            r = subprocess.run(
                [sys.executable, "-m", "labcap.cli", "run", "--host", url, *RUN_OPTIONS,
                 "--out", str(out)],
                capture_output=True,
                text=True,
                timeout=180,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
            paths[name] = out
    yield paths


@pytest.fixture(scope="module")
def two_runs(runs):
    return [runs["before"], runs["after"]]


def _only_local(requests: list[str]) -> list[str]:
    return [u for u in requests if not u.startswith(("file://", "data:", "blob:", "about:"))]


def test_run_report_loads_offline_and_plots(two_runs):
    run = two_runs[0]
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    html = (run / "report.html").read_text()
    n_charts = html.count('class="chart"')
    page = visit((run / "report.html").as_uri(), PLOTS_RENDERED)
    assert page.exceptions == [] and page.console_errors == []
    assert _only_local(page.requests) == []  # nothing fetched from a network
    assert n_charts >= 4 and page.value == n_charts  # every chart drew its SVG


def test_comparison_report_loads_offline_and_plots(two_runs, tmp_path):
    out = tmp_path / "compare.html"
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", *map(str, two_runs), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    page = visit(out.as_uri(), PLOTS_RENDERED)
    assert page.exceptions == [] and page.console_errors == []
    assert _only_local(page.requests) == []
    assert page.value == 2
    html = out.read_text()
    assert "Max concurrent users at SLO" in html and "not comparable" not in html
    # the run whose target saturates holds fewer users within SLO: a delta coloured worse
    assert 'class="delta worse"' in html


# --- the comparison's deltas against its own data and charts (issue 20) ---------------------

COLOURS = {
    "better": "rgb(29, 122, 58)",
    "worse": "rgb(179, 38, 30)",
    "neutral": "rgb(93, 102, 117)",
}

# Each delta as the browser shows it: its text, its computed colour, its data attributes, and
# for a latency the y the chart plots at its x for the run and for the baseline.
DELTAS = """
Array.from(document.querySelectorAll('.delta[data-kind]')).map(el => {
  const d = Object.assign({}, el.dataset);
  d.text = el.querySelector('.delta-text').textContent;
  d.colour = getComputedStyle(el).color;
  d.mark = el.querySelector('.mark').textContent;
  if (d.kind === 'latency') {
    const gd = document.querySelector('#' + d.chart + ' .js-plotly-plot');
    const at = name => {
      const t = gd.data.find(t => t.name === name);
      const i = Array.from(t.x).indexOf(Number(d.x));
      return i < 0 ? null : Number(t.y[i]);
    };
    d.chart_value = at(d.run); d.chart_base = at(d.baseRun);
  }
  return d;
})
"""


def _text_sign(text: str) -> int:
    t = text.strip()
    if t.startswith("±0"):
        return 0
    if t.startswith("+"):
        return 1
    assert t.startswith("−"), f"a delta without its sign: {text!r}"
    return -1


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _check_delta(d: dict) -> str:
    """Assert one delta's sign and colour agree with its data (and its chart); its tone."""
    significant = d["significant"] == "true"
    assert d["mark"] == ("*" if significant else d["mark"]) and (d["mark"] == "*") == significant
    if d["kind"] == "latency":
        base, value = float(d["base"]), float(d["value"])
        assert d["chart_value"] == pytest.approx(value, rel=1e-3)
        assert d["chart_base"] == pytest.approx(base, rel=1e-3)
        assert (
            _text_sign(d["text"])
            == _sign(value - base)
            == _sign(d["chart_value"] - d["chart_base"])
        )
        tone = ("worse" if value > base else "better") if significant else "neutral"
    elif d["kind"] == "capacity":
        lo_b, lo_v = int(d["baseLow"]), int(d["valueLow"])
        hi_b = int(d["baseHigh"]) if d["baseHigh"] else None
        hi_v = int(d["valueHigh"]) if d["valueHigh"] else None
        lower = hi_v is not None and hi_v <= lo_b
        higher = hi_b is not None and lo_v >= hi_b
        assert significant == (lower or higher)
        if lower or higher:
            assert _text_sign(d["text"]) == (-1 if lower else 1)
        tone = ("worse" if lower else "better") if significant else "neutral"
    else:
        assert not significant
        tone = "neutral"
    assert d["colour"] == COLOURS[tone], d
    return tone


def test_comparison_delta_sign_and_colour_agree_with_data_and_charts(runs, tmp_path):
    out = tmp_path / "compare.html"
    paths = [runs["before"], runs["after"], runs["again"]]
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", *map(str, paths), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    page = visit(out.as_uri(), DELTAS)
    assert page.exceptions == [] and page.console_errors == []
    assert _only_local(page.requests) == []
    deltas = page.value
    tones = [(d.get("run"), d["kind"], _check_delta(d)) for d in deltas]
    slow = "2: after (remote)"
    # at 5 users the one-worker run queues (p95 about 450 ms, against a few ms): a red "+",
    # significant; at 1 user its 100 ms may or may not stand out on a busy machine
    queued = [d for d in deltas if d["kind"] == "latency" and d["run"] == slow and d["x"] == "5"]
    assert queued and all(d["significant"] == "true" for d in queued), queued
    assert all(_check_delta(d) == "worse" and d["text"].startswith("+") for d in queued)
    # capacities (1 user against at least 5 on a quiet machine): a tone that agrees with the
    # bands, never "better" for the queueing run
    capacity = [d for d in deltas if d["kind"] == "capacity"]
    assert len(capacity) == 2 and _check_delta(capacity[0]) in ("worse", "neutral")
    assert ("worse" in {t for _, k, t in tones if k == "latency"}) and len(tones) >= 5
    html = out.read_text()
    assert "p95 (all)" not in html
    for path in paths:  # each run's capacity as its own report words it, "≥" and "<" kept
        words = capacity_text(plan_capacity(RunDir.open(path)), "")
        assert f"<td>{words.replace('<', '&lt;')}" in html
    assert not re.search(r"(?<![±\d.])0 users", html)  # a capacity is never "0 users"


# Tick labels of every axis titled in users, and every SLO line a chart draws.
AXES = """
Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  id: gd.closest('section').id,
  x_title: (gd.layout.xaxis && gd.layout.xaxis.title && gd.layout.xaxis.title.text) || '',
  x_ticks: Array.from(gd.querySelectorAll('.xtick text')).map(t => t.textContent),
  y2_title: (gd.layout.yaxis2 && gd.layout.yaxis2.title && gd.layout.yaxis2.title.text) || '',
  y2_ticks: Array.from(gd.querySelectorAll('.y2tick text')).map(t => t.textContent),
  slo: gd.data.filter(t => (t.name || '').startsWith('SLO ')).map(t => [t.name, Array.from(t.y)]),
}))
"""


def _integer_ticks(ticks: list[str]) -> bool:
    return bool(ticks) and all(t.replace("−", "-").replace(",", "").lstrip("-").isdigit()
                               for t in ticks)  # fmt: skip


@pytest.mark.parametrize("kind", ["run", "comparison"])
def test_user_axes_have_integer_ticks_and_latency_charts_draw_the_slo(runs, tmp_path, kind):
    if kind == "run":
        out = tmp_path / "report.html"
        args = [str(runs["after"]), "-o", str(out)]
    else:
        out = tmp_path / "compare.html"
        args = [str(runs["before"]), str(runs["after"]), "-o", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    charts = visit(out.as_uri(), AXES).value
    user_axes = [c for c in charts if "users" in c["x_title"]]
    assert user_axes and all(_integer_ticks(c["x_ticks"]) for c in user_axes), user_axes
    assert all(_integer_ticks(c["y2_ticks"]) for c in charts if c["y2_title"] == "users")
    latency = [c for c in charts if c["id"].startswith("latency")]
    assert latency and all(c["slo"] == [["SLO p95 ≤ 300 ms", [300, 300]]] for c in latency)


# --- the run report: the recommendation before the first chart -------------------------------

ORDER = """
(() => {
  const rec = document.querySelector('#recommendation');
  const chart = document.querySelector('.chart');
  return {
    before: !!(rec.compareDocumentPosition(chart) & Node.DOCUMENT_POSITION_FOLLOWING),
    rec_top: rec.getBoundingClientRect().top,
    chart_top: chart.getBoundingClientRect().top,
    action: document.querySelector('#recommendation .decision').dataset.action,
    capacity: document.querySelector('#capacity').textContent,
    inputs: document.querySelector('#decision-inputs').textContent,
    groups: Array.from(document.querySelectorAll('#reasons ul')).map(ul => [
      ul.dataset.action,
      Array.from(ul.querySelectorAll('li code')).map(c => c.textContent),
    ]),
  };
})()
"""


def test_run_report_states_the_recommendation_before_the_first_chart(runs):
    import json

    run = runs["after"]
    plan = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "plan", str(run), "--expected-users", "3", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    rec = json.loads(plan.stdout)["recommendation"]
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "report", str(run)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    page = visit((run / "report.html").as_uri(), ORDER)
    assert page.exceptions == [] and page.console_errors == []
    v = page.value
    assert v["before"] and v["rec_top"] < v["chart_top"]
    assert v["action"] == rec["action"]  # the answer labcap plan gave, from plan.json's inputs
    assert "3 expected users" in v["inputs"] and "saved by labcap plan" in v["inputs"]
    # the plan's capacity in the report's words (1 user on a quiet machine: 5 users queue)
    assert v["capacity"] == capacity_text(plan_capacity(RunDir.open(run)))
    # every reason sits under the action it supports
    by_rule = {x["rule"]: x["action"] for x in rec["reasons"]}
    shown = [(action, rule) for action, rules in v["groups"] for rule in rules]
    assert sorted(rule for _, rule in shown) == sorted(by_rule)
    assert all(by_rule[rule] == action for action, rule in shown)
    assert v["groups"][0][0] == rec["action"]
