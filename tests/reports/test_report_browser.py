"""Reports opened in a real headless Chromium: they load offline, without errors, and plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two short real runs: a fast target, then one worker with a 100 ms service time
    (ten users queue for it, so it holds fewer users within the SLO)."""
    base = tmp_path_factory.mktemp("runs")
    paths = []
    with (
        loopback_server("target_server.py") as fast,
        loopback_server("queue_server.py", "1", "100") as queued,
    ):
        for name, url in (("before", fast), ("after", queued)):
            out = base / name
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "labcap.cli",
                    "run",
                    "--host",
                    url,
                    "--scenario",
                    str(SUPPORT / "locustfile_target.py"),
                    "--users",
                    "1,10",
                    "--spawn-rate",
                    "20",
                    "--slo",
                    "p95_ms=300",
                    "--step-duration",
                    "3s",
                    "--settle",
                    "1s",
                    "--window",
                    "1s",
                    "--no-calibrate",
                    "--out",
                    str(out),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode == 0, r.stderr
            paths.append(out)
    yield paths


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
