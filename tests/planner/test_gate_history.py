"""``labcap gate HISTORY_DIR CURRENT``: the current run against several past baseline runs.

The runs are seeded synthetic runs (tests/support/runs.py, real HDR histograms); a
run's ``scale`` stands for the machine's drift between runs.
"""

from __future__ import annotations

import json

from tests.support.cli import labcap
from tests.support.runs import synthetic_run

STABLE = (1.0, 1.01, 0.99, 1.0, 1.02)
DRIFTING = (1.0, 1.12, 0.93, 1.08, 0.97, 1.05)  # between-run drift of ~7 %


def history(root, scales, seed=100):
    root.mkdir()
    for i, s in enumerate(scales):
        synthetic_run(root / f"run{i:02d}", seed + i, scale=s, requests=3000)
    return root


def test_a_slower_current_run_is_a_regression(tmp_path):
    past = history(tmp_path / "history", STABLE)
    current = synthetic_run(tmp_path / "current", 7, scale=1.5, requests=3000)
    r = labcap("gate", str(past), str(current), "--json")
    result = json.loads(r.stdout)
    assert r.returncode == 1, r.stdout + r.stderr
    assert result["outcome"] == "regression" and "history" in result["method"]
    assert "5 runs" in result["baseline"]


def test_a_current_run_like_the_history_passes(tmp_path):
    past = history(tmp_path / "history", STABLE)
    current = synthetic_run(tmp_path / "current", 7, scale=1.0, requests=3000)
    r = labcap("gate", str(past), str(current))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("PASS")


def test_a_baseline_that_drifts_more_than_the_margin_is_inconclusive(tmp_path):
    """The case history mode is for: against its lowest past run alone the current run
    looks 20 % slower (a regression), but the history shows the baseline itself moving
    that much, so a 10 % margin cannot be resolved: inconclusive, not a false alarm."""
    past = history(tmp_path / "history", DRIFTING)
    current = synthetic_run(tmp_path / "current", 7, scale=1.12, requests=3000)
    single = labcap("gate", str(past / "run02"), str(current), "--max-regression", "p95=10%")
    assert single.returncode == 1, single.stdout
    r = labcap("gate", str(past), str(current), "--max-regression", "p95=10%")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "too noisy" in r.stdout and "between 6 runs" in r.stdout


def test_too_short_a_history_is_a_usage_error(tmp_path):
    past = history(tmp_path / "history", STABLE[:4])
    current = synthetic_run(tmp_path / "current", 7)
    r = labcap("gate", str(past), str(current))
    assert r.returncode == 2
    assert "at least 5 complete runs" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_history_without_a_current_run_is_a_usage_error(tmp_path):
    past = history(tmp_path / "history", STABLE)
    r = labcap("gate", str(past))
    assert r.returncode == 2 and "HISTORY_DIR CURRENT" in r.stderr
