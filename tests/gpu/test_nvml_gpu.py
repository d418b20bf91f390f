"""NVML on a real NVIDIA GPU (marker ``gpu``; skipped with NVML's reason elsewhere).

A torch process holding 2 GiB and running matrix products must show up with its
PID and memory, the GPU busy; the collector must stop cleanly; a labcap-level
recording must land in a run directory as gpu_samples/gpu_processes with steps.
Set LABCAP_GPU_OUT to a directory to keep the samples as CSV (scripts/gpu-check.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from labcap.collectors.base import RunContext
from labcap.collectors.gpu import NvmlCollector, NvmlSettings
from labcap.collectors.registry import gpu_collectors

pytestmark = pytest.mark.gpu
GIB = 2**30
LOAD = Path(__file__).with_name("torch_load.py")


def _keep(name: str, frame: pd.DataFrame) -> None:
    out = os.environ.get("LABCAP_GPU_OUT")
    if out:
        frame.to_csv(Path(out) / f"{name}.csv", index=False)


@pytest.fixture
def torch_user():
    pytest.importorskip("torch")
    proc = subprocess.Popen(
        [sys.executable, str(LOAD), "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()  # "ready" once it holds memory and has computed
        assert line.strip() == "ready", f"torch load did not start (exit {proc.poll()})"
        yield proc
    finally:
        proc.stdin.close()  # asks it to stop
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_busy_torch_process_shows_up_with_its_pid_and_memory(torch_user):
    c = NvmlCollector(NvmlSettings(interval_s=0.25))
    c.start(None)
    assert c.status().available, c.status().reason
    time.sleep(3.0)
    c.stop()
    assert not any(t.name == "labcap-gpu" for t in threading.enumerate())
    assert c.status().warnings == ()
    tables = c.tables()
    s, p = tables["gpu_samples"], tables["gpu_processes"]
    _keep("nvml_samples", s)
    _keep("nvml_processes", p)
    assert len(s) >= 8 and set(s["source"]) == {"nvml"}
    whole = s[s["mig_instance"].isna()]
    assert whole["gpu_name"].str.contains("NVIDIA").all()
    assert (whole["mem_total_bytes"] > 0).all() and (whole["mem_used_bytes"] >= 2 * GIB).all()
    assert whole["util_gpu_pct"].max() > 0  # the matmuls keep it busy
    assert whole["sm_clock_mhz"].max() > 0 and whole["temperature_c"].max() > 0
    assert whole["power_w"].max() > 0
    mine = p[p["pid"] == torch_user.pid]
    assert len(mine), f"torch pid {torch_user.pid} not among {sorted(set(p['pid']))}"
    used = mine["used_mem_bytes"].dropna()
    assert len(used) == 0 or used.max() >= 2 * GIB  # None only where NVML hides it
    assert mine["process_name"].iloc[0].startswith("python")
    assert whole["processes"].max() >= 1
    print(json.dumps(whole.iloc[-1].to_dict(), default=str))


def test_auto_mode_finds_the_gpu():
    (c,) = gpu_collectors("auto", None)
    assert isinstance(c, NvmlCollector)


def test_a_recording_lands_in_the_run_directory_on_the_plans_steps(tmp_path, torch_user):
    from labcap.measure.run import _write_collector_tables
    from labcap.model import build_plan
    from labcap.planner.gpu_evidence import gpu_evidence
    from labcap.store import JOURNAL, RunDir

    plan = build_plan((1, 2), 2.0, settle_s=0.5, window_s=1.0, spawn_rate=10)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    t0 = time.time()
    (run_dir / JOURNAL).write_text(json.dumps({"kind": "start", "t0_unix": t0}) + "\n")
    c = NvmlCollector(NvmlSettings(interval_s=0.5))
    c.start(RunContext(run_dir=run_dir, plan=plan))
    time.sleep(4.2)
    c.stop()
    said: list[str] = []
    _write_collector_tables(RunDir(run_dir), (c,), plan, said.append)
    samples = pd.read_parquet(run_dir / "gpu_samples.parquet")
    procs = pd.read_parquet(run_dir / "gpu_processes.parquet")
    _keep("run_gpu_samples", samples)
    assert {"t_s", "step_index"} <= set(samples.columns) and set(samples["step_index"]) == {0, 1}
    assert torch_user.pid in set(procs["pid"]) and "step_index" in procs.columns
    assert any("gpu_samples.parquet" in m for m in said)
    ev = gpu_evidence(RunDir(run_dir), [(0, 1), (1, 2)], 1)
    assert ev.available and ev.gpus >= 1 and ev.sources == ("nvml",)
    assert ev.measurements["gpu_users_per_gpu"] >= 1 / ev.gpus
    assert all(r.mean_util_pct is not None and r.mean_util_pct > 0 for r in ev.steps)
    assert all(r.sharing_max >= 1 for r in ev.steps)
    out = os.environ.get("LABCAP_GPU_OUT")
    if out:
        Path(out, "evidence.json").write_text(json.dumps(ev.to_dict(), indent=1, default=str))
