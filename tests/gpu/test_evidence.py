"""GPU evidence per step from a run directory's tables: activity, idle while users queue,
memory headroom, sharing; and the rules it feeds."""

from __future__ import annotations

import pandas as pd
import pytest

from labcap.collectors.gpu import GpuProcess, GpuSample, sample_frames
from labcap.planner.recommend import plan_and_recommend
from labcap.store import atomic_write_parquet
from tests.conftest import record_run

GIB = 2**30


def _write_gpu_run(tmp_path, *, startup: bool = True):
    run = record_run(
        tmp_path / "run",
        {1: {"hub.spawn_ready": [2500.0] * 20}, 2: {"hub.spawn_ready": [2500.0] * 20}},
        slos=["p95_ms=5000"],
        step_s=10,
        settle_s=2,
        window_s=2,
    )
    # one whole GPU sampled each second: 10 % busy until t=15, then 90 %
    samples = [
        GpuSample(
            t_unix=1000.0 + t,
            source="nvml",
            gpu_index=0,
            gpu_uuid="GPU-0",
            gpu_name="NVIDIA H100 80GB HBM3",
            util_gpu_pct=10.0 if t < 15 else 90.0,
            mem_used_bytes=10 * GIB,
            mem_total_bytes=80 * GIB,
        )
        for t in range(20)
    ]
    procs = [
        GpuProcess(1000.0 + t, "nvml", 0, "GPU-0", None, pid, GIB, "python", None, None, None)
        for t in (12, 13)
        for pid in (100, 101)
    ]
    for name, frame in sample_frames(samples, procs).items():
        frame = frame.assign(t_s=frame["t_unix"] - 1000.0)
        frame["step_index"] = (frame["t_s"] // 10).astype(int)
        atomic_write_parquet(run / f"{name}.parquet", frame)
    if startup:  # two users waited for their servers: [2, 8) and [12, 13)
        recs = pd.DataFrame(
            {"t_s": [2.0, 12.0], "ready_s": [6.0, 1.0], "exited_s": [float("nan")] * 2}
        )
        atomic_write_parquet(run / "startup_records.parquet", recs)
    return run


def test_evidence_per_step_and_the_measurements_it_feeds(tmp_path):
    out = plan_and_recommend(_write_gpu_run(tmp_path), expected_users=2)
    gpu = out.gpu
    assert gpu.available and gpu.gpus == 1 and gpu.queue_source == "startup_records"
    s0, s1 = gpu.steps
    assert (s0.device, s0.users, s0.metric) == ("GPU 0", 1, "util_gpu_pct")
    assert s0.mean_util_pct == 10.0 and s0.samples == 10
    assert s0.idle_while_queued_s == 6.0  # t = 2..7, each sample standing for 1 s
    assert s1.idle_while_queued_s == 1.0  # t = 12 (13 is ready, and from 15 it is busy)
    assert s1.mean_util_pct == 50.0 and s1.p95_util_pct == 90.0
    assert s1.mem_headroom_bytes == 70 * GIB and s1.mem_headroom_pct == 87.5
    assert (s0.sharing_max, s1.sharing_max) == (0, 2)
    m = gpu.measurements
    assert m == {
        "gpu_count": 1,
        "gpu_util_pct": 50.0,
        "gpu_mem_used_pct": 12.5,
        "gpu_users_per_gpu": 2.0,
        "gpu_idle_while_queued_s": 7.0,
    }
    rec = out.recommendation
    assert rec.measurements["gpu_idle_while_queued_s"] == 7.0
    assert "gpu-sharing-needed" in {r.rule for r in rec.reasons}
    # 7 s idle is under the rule's 30 s; 50 % busy is not "light"
    assert not {"gpu-idle-while-queued", "gpu-light-users-share"} & {r.rule for r in rec.reasons}
    assert gpu.summary() == (
        "1 GPU (nvml); 50 % busy at the capacity step; 2 users per GPU; peak memory 12.5 %; "
        "idle below 50 % while users queued: 7 s"
    )
    d = out.to_dict()["gpu"]
    assert d["idle_threshold_pct"] == 50.0 and d["steps"][1]["sharing_max"] == 2


def test_without_startup_records_the_spawn_windows_bound_the_wait(tmp_path):
    gpu = plan_and_recommend(_write_gpu_run(tmp_path, startup=False)).gpu
    assert gpu.queue_source == "spawn-windows" and any("upper bound" in n for n in gpu.notes)
    # 2.5 s spawns ended in every 2 s window: someone always waited, and the GPU idled
    assert gpu.steps[0].idle_while_queued_s == pytest.approx(10.0)


def test_a_run_without_gpu_samples_says_why(tmp_path):
    run = record_run(tmp_path / "run", {1: {"api": [5.0] * 10}}, slos=["p95_ms=100"])
    gpu = plan_and_recommend(run).gpu
    assert not gpu.available and "--gpu" in gpu.reason
    assert "gpu_users_per_gpu" not in gpu.measurements
