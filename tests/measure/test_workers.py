"""Locust workers: windows from several processes merge exactly; a real 2-worker run."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from labcap.loadtests.merge import MessageJournal, WindowMerger
from labcap.loadtests.recorder import WindowRecorder
from labcap.model import build_plan
from labcap.store import JOURNAL
from tests.support.machine import run_once_more_if_partial
from tests.support.servers import loopback_server

LOCUSTFILE = Path(__file__).parent.parent / "support" / "locustfile_target.py"


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def _events(seed: int, n: int, duration_s: float) -> list[tuple[float, str, float, bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.uniform(0, duration_s)
        ep = rng.choice(["api.a", "api.b", "api.c"])
        ms = rng.lognormvariate(1.0, 1.2)  # 0.1 ms .. seconds: many HDR buckets
        out.append((t, ep, ms, rng.random() < 0.03))
    return sorted(out)


def _feed(rec: WindowRecorder, clock: Clock, events, end_s: float) -> None:
    rec.t0 = 0.0
    for t, ep, ms, failed in events:
        clock.t = t
        rec.on_request("GET", ep, ms, exception=ConnectionError("refused") if failed else None)
    clock.t = end_s
    rec.advance()


def test_worker_windows_merge_exactly_into_the_single_process_result():
    plan = build_plan((5, 10), 6.0, settle_s=1.0, window_s=1.0, spawn_rate=5)
    events = _events(7, 6000, plan.duration_s - 0.01)
    # one process saw everything
    single = io.StringIO()
    clock = Clock()
    rec = WindowRecorder(plan, single, clock=clock, sync=lambda fd: None)
    single.fileno = lambda: -1  # type: ignore[method-assign]
    _feed(rec, clock, events, plan.duration_s + 0.01)
    expected = [json.loads(ln) for ln in single.getvalue().splitlines()]
    # three workers each saw a random share; each window goes to the master as a message
    merged = io.StringIO()
    merged.fileno = lambda: -1  # type: ignore[method-assign]
    merger = WindowMerger(plan, merged, 3, sync=lambda fd: None)
    rng = random.Random(8)
    shares: dict[int, list] = {0: [], 1: [], 2: []}
    for e in events:
        shares[rng.randrange(3)].append(e)
    for i, share in shares.items():
        c = Clock()
        journal = MessageJournal(lambda recs, name=f"w{i}": merger.add(name, recs))
        w = WindowRecorder(
            plan, journal, clock=c, sync=lambda fd: None, worker=f"w{i}", emit_bins=True
        )
        _feed(w, c, share, plan.duration_s + 0.01)
    merger.poll(plan.duration_s + 0.01)
    assert merger.finished and not merger.gaps
    got = [json.loads(ln) for ln in merged.getvalue().splitlines()]

    def rows(records, kind, drop=()):
        return [{k: v for k, v in r.items() if k not in drop} for r in records if r["kind"] == kind]

    # counts, every percentile, the mean and the histogram itself: identical
    exp_windows = rows(expected, "window", drop=("hdr", "end_s"))
    got_windows = rows(got, "window", drop=("hdr", "end_s"))
    assert len(exp_windows) == len(got_windows) > 20
    assert got_windows == exp_windows
    from hdrh.histogram import HdrHistogram

    for e, g in zip(rows(expected, "window"), rows(got, "window"), strict=True):
        he, hg = HdrHistogram.decode(e["hdr"]), HdrHistogram.decode(g["hdr"])
        assert he.get_total_count() == hg.get_total_count()
        for q in (50, 90, 99, 99.9, 100):
            assert he.get_value_at_percentile(q) == hg.get_value_at_percentile(q)
    assert rows(got, "failure") == rows(expected, "failure")
    exp_sends = rows(expected, "sends")
    got_sends = rows(got, "sends", drop=("workers",))
    assert [s["sends"] for s in got_sends] == [s["sends"] for s in exp_sends]
    assert [s["burst_pct"] for s in got_sends] == [s["burst_pct"] for s in exp_sends]
    # every worker's CPU reading is passed on, per window
    gens = rows(got, "generator")
    assert {g["worker"] for g in gens} == {"w0", "w1", "w2"}
    assert len(gens) == 3 * len(plan.windows)


def test_a_missing_worker_window_is_journalled_late_with_a_gap():
    plan = build_plan((5,), 2.0, settle_s=0.5, window_s=1.0, spawn_rate=5)
    out = io.StringIO()
    out.fileno = lambda: -1  # type: ignore[method-assign]
    merger = WindowMerger(plan, out, 2, sync=lambda fd: None, grace_s=5)
    c = Clock()
    w = WindowRecorder(
        plan, MessageJournal(lambda r: merger.add("w1", r)), clock=c, sync=lambda fd: None
    )
    _feed(w, c, [(0.7, "api.a", 1.0, False), (1.2, "api.a", 2.0, False)], 2.01)
    merger.poll(2.01)
    assert merger.pos == 0  # waiting for w2
    merger.poll(0.5 + 5.0)
    assert merger.pos == 1 and "1 of 2 workers sent no data" in merger.gaps[0]
    merger.poll(100.0)
    assert merger.finished


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


def test_run_with_two_locust_workers(tmp_path, target):
    printed: dict[Path, str] = {}

    def two_workers(attempt: int) -> Path:
        out = tmp_path / f"run-{attempt}"
        r = subprocess.run(
            [
                sys.executable, "-m", "labcap.cli", "run", "--host", target,
                "--scenario", str(LOCUSTFILE), "--users", "4,8", "--step-duration", "4s",
                "--settle", "1s", "--window", "1s", "--workers", "2", "--no-calibrate",
                "--out", str(out), "--json",
            ],
            capture_output=True, text=True, timeout=180, env=dict(os.environ),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "2 Locust worker processes connected" in r.stderr
        printed[out] = r.stdout
        return out

    out = run_once_more_if_partial(two_workers)
    plan = json.loads(printed[out])
    assert plan["status"] == "complete", plan.get("status_reasons")
    assert [s["verdict"] for s in plan["steps"]] == ["pass", "pass"]
    manifest = json.loads((out / "manifest.json").read_text())
    gen = manifest["generator"]
    assert gen["processes"] == 2 and set(gen["per_worker"]) == {"w1", "w2"}
    assert all(w["cpu_pct_max"] > 0 for w in gen["per_worker"].values())
    import pandas as pd

    windows = pd.read_parquet(out / "windows.parquet")
    assert windows["requests"].sum() > 100
    assert windows["hdr"].str.len().gt(0).all()


def test_workers_must_be_a_count_or_auto(tmp_path, target):
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "run", "--host", target, "--workers", "many"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("labcap: error: --workers 'many'")


def test_a_worker_that_dies_leaves_a_partial_run_with_the_gap_named(tmp_path, target):
    import time

    import psutil

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "labcap.cli", "run", "--host", target,
            "--scenario", str(LOCUSTFILE), "--users", "4", "--step-duration", "8s",
            "--settle", "1s", "--window", "1s", "--workers", "2", "--no-calibrate",
            "--out", str(out), "--json",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            kids = psutil.Process(proc.pid).children(recursive=True)
            workers = [k for k in kids if "--worker" in _cmdline(k)]
            journal = out / JOURNAL
            merged = journal.read_text().count('"kind":"window"') if journal.exists() else 0
            if len(workers) == 2 and merged >= 2:  # connected, and merged a few windows
                victim = workers[0]
            time.sleep(0.2)
        assert victim is not None, "the Locust workers did not start"
        victim.kill()
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "partial"
    assert any("workers sent no data" in r for r in manifest["status_reasons"])


def test_generator_cpu_is_taken_over_real_spans_not_the_empty_windows_of_a_cut_probe():
    from labcap.measure.run import _generator_cpu

    def rec(i: int, wall: float, cpu: float) -> dict:
        return {"kind": "generator", "worker": "local", "window_index": i, "wall_s": wall,
                "cpu_s": cpu}  # fmt: skip

    # 1 s windows at 30 % of a core; then a probe ended early: its three remaining windows
    # close 1 ms apart (5 ms of CPU each: 500 % over 1 ms), then the next probe's 1 s window
    records = [rec(0, 0.0, 0.0), rec(1, 1.0, 0.3), rec(2, 2.0, 0.6), rec(3, 2.001, 0.605),
               rec(4, 2.002, 0.61), rec(5, 2.003, 0.615), rec(6, 3.003, 0.915)]  # fmt: skip
    said: list[str] = []
    gen = _generator_cpu(records, said.append)["per_worker"]["local"]
    assert gen["cpu_pct_max"] < 35 and not said, (gen, said)
    assert gen["windows"] == 3  # 0-1, 1-2, 2-3.003
    hot = [rec(0, 0.0, 0.0), rec(1, 1.0, 0.9)]
    assert "used 90 % of a core" in _generator_cpu(hot, said.append)["warnings"][0]


def _cmdline(process: object) -> list[str]:
    """A child's command line; none for one that ended (or is a zombie) meanwhile: the run's
    short-lived helpers (preflight, calibration) come and go while the test looks."""
    import psutil

    try:
        return process.cmdline()  # type: ignore[attr-defined]
    except psutil.Error:
        return []
