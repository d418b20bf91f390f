"""GPU evidence per step: are GPUs idle while users queue, contended, or fragmented?

Read from a run's ``gpu_samples`` (NVML or dcgm-exporter) and ``gpu_processes``
tables. Per step and per GPU or MIG instance:

* **mean / p95 activity**: ``util_gpu_pct`` for a whole GPU; under MIG, where
  utilisation is not defined, the instance's ``engine_active_pct`` (GPM or
  DCGM_FI_PROF_GR_ENGINE_ACTIVE). ``metric`` says which one a row used.
* **idle while queued**: seconds the device sat below ``IDLE_PCT`` while at
  least one user waited for a server. Waiting comes from container/pod
  startup records (created → ready, engine timestamps) when the run has them,
  else from the spawn endpoints' windows (``[window end - max latency, window
  end]``, an upper bound).
* **memory headroom**: total minus the step's peak use.
* **sharing**: the most processes (NVML) or pods (dcgm-exporter) seen on the
  device at one instant.

The run-wide quantities the policy reads (``gpu_count``, ``gpu_util_pct``,
``gpu_mem_used_pct``, ``gpu_users_per_gpu``, ``gpu_idle_while_queued_s``) are
taken at the capacity step: the first failing step, else the last measured.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from labcap.model import Manifest
from labcap.store import GPU_PROCESSES, GPU_SAMPLES

IDLE_PCT = 50.0  # below this a GPU counts as idle while users queue


@dataclass(frozen=True)
class GpuStepEvidence:
    step_index: int
    users: int
    device: str  # "GPU 0" or "GPU 0 / MIG 7 (1g.5gb)"
    source: str
    gpu_index: int
    gpu_uuid: str
    mig_instance: int | None
    mig_profile: str | None
    metric: str | None  # util_gpu_pct | engine_active_pct | None (no activity measured)
    samples: int
    mean_util_pct: float | None
    p95_util_pct: float | None
    idle_while_queued_s: float | None  # None: the run has no record of users waiting
    mem_used_peak_bytes: int | None
    mem_total_bytes: int | None
    mem_headroom_bytes: int | None
    mem_headroom_pct: float | None
    sharing_max: int | None  # processes or pods on the device at one instant


@dataclass(frozen=True)
class GpuEvidence:
    available: bool
    reason: str
    sources: tuple[str, ...] = ()
    gpus: int = 0
    mig_instances: int = 0
    queue_source: str | None = None  # startup_records | spawn-windows | None
    capacity_step: int | None = None
    steps: tuple[GpuStepEvidence, ...] = ()
    measurements: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for `labcap plan`: the capacity step's figures."""
        if not self.available:
            return f"not measured ({self.reason})"
        m = self.measurements
        parts = [
            f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}"
            + (f", {self.mig_instances} MIG instances" if self.mig_instances else "")
            + f" ({', '.join(self.sources)})"
        ]
        if "gpu_util_pct" in m:
            parts.append(f"{m['gpu_util_pct']:g} % busy at the capacity step")
        if "gpu_users_per_gpu" in m:
            parts.append(f"{m['gpu_users_per_gpu']:g} users per GPU")
        if "gpu_mem_used_pct" in m:
            parts.append(f"peak memory {m['gpu_mem_used_pct']:g} %")
        if "gpu_idle_while_queued_s" in m:
            parts.append(
                f"idle below {IDLE_PCT:g} % while users queued: {m['gpu_idle_while_queued_s']:g} s"
            )
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [asdict(s) for s in self.steps]
        d["idle_threshold_pct"] = IDLE_PCT
        return d


def unavailable(reason: str) -> GpuEvidence:
    return GpuEvidence(False, reason)


def gpu_evidence(
    run: Any,
    steps: list[tuple[int, int]],
    capacity_step: int | None,
    is_startup: Any = None,
) -> GpuEvidence:
    """Evidence from a RunDir; ``steps`` are (index, users) of the plan's steps."""
    samples = run.table(GPU_SAMPLES)
    if samples is None:
        why = _collector_reason(run.read_manifest())
        return unavailable(
            why or "the run has no GPU samples (run with --gpu nvml or --gpu-metrics-url)"
        )
    if not len(samples) or "step_index" not in samples.columns:
        why = _collector_reason(run.read_manifest())
        return unavailable(why or "the GPU collector recorded no samples during the load")
    procs = run.table(GPU_PROCESSES)
    queued, queue_source = _queued_intervals(run, is_startup)
    users = dict(steps)
    rows: list[GpuStepEvidence] = []
    samples = samples.sort_values("t_s", kind="stable")
    samples = samples.assign(_key=_device_keys(samples))
    dt = _sample_durations(samples)
    samples = samples.assign(_dt=dt)
    for (step, _key), part in samples[samples["step_index"] >= 0].groupby(
        ["step_index", "_key"], sort=True
    ):
        rows.append(_step_row(int(step), users.get(int(step), -1), part, procs, queued))
    gpus = samples["gpu_uuid"].nunique()  # physical GPUs, partitioned or not
    migs = samples[samples["mig_instance"].notna()].drop_duplicates(["gpu_uuid", "mig_instance"])
    notes = []
    if len(migs):
        notes.append(
            "MIG: utilisation is not defined per instance; activity is the instance's "
            "graphics-engine activity (GPM or DCGM_FI_PROF_GR_ENGINE_ACTIVE)"
        )
    if queue_source == "spawn-windows":
        notes.append(
            "users waiting: from the spawn endpoints' windows (window end minus its slowest "
            "spawn), an upper bound; container/pod startup records give exact intervals"
        )
    measurements = _measurements(rows, capacity_step, gpus, samples, procs)
    return GpuEvidence(
        available=True,
        reason="",
        sources=tuple(sorted(samples["source"].dropna().unique())),
        gpus=int(gpus),
        mig_instances=len(migs),
        queue_source=queue_source,
        capacity_step=capacity_step,
        steps=tuple(rows),
        measurements=measurements,
        notes=tuple(notes),
    )


def _collector_reason(manifest: Manifest) -> str:
    for c in manifest.collectors:
        if c.get("name", "").startswith("gpu") and not c.get("available"):
            return f"collector {c['name']} unavailable: {c.get('reason', '')}"
    return ""


def _device_keys(samples: Any) -> list[tuple[Any, ...]]:
    mig = samples["mig_instance"].where(samples["mig_instance"].notna(), None)
    return list(
        zip(
            samples["source"],
            samples["gpu_uuid"],
            [None if _nan(m) else m for m in mig],
            strict=True,
        )
    )


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _sample_durations(samples: Any) -> list[float]:
    """Seconds each sample stands for: the gap to the device's next sample (gaps capped)."""
    out = [0.0] * len(samples)
    pos = {idx: i for i, idx in enumerate(samples.index)}
    for _, part in samples.groupby("_key", sort=False):
        # one instant per scrape: several pods on one device share a timestamp
        times = sorted(set(part["t_s"]))
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        typical = sorted(gaps)[len(gaps) // 2] if gaps else 1.0
        span = {t: min(g, 3 * typical) for t, g in zip(times, gaps, strict=False)}
        for idx, t in zip(part.index, part["t_s"], strict=True):
            out[pos[idx]] = float(span.get(t, typical))
    return out


def _queued_intervals(run: Any, is_startup: Any) -> tuple[list[tuple[float, float]], str | None]:
    recs = run.table("startup_records")
    intervals: list[tuple[float, float]] = []
    if recs is not None and len(recs) and "t_s" in recs.columns:
        for _, r in recs.iterrows():
            start = float(r["t_s"])
            done = next(
                (
                    float(r[c])
                    for c in ("ready_s", "exited_s")
                    if c in recs.columns and not _nan(r[c])
                ),
                math.inf,
            )
            intervals.append((start, start + done))
        return _merge(intervals), "startup_records"
    windows = run.windows()
    if is_startup is not None and len(windows):
        spawn = windows[[bool(is_startup(e)) for e in windows["endpoint"]]]
        spawn = spawn[spawn["requests"] > 0]
        for _, w in spawn.iterrows():
            intervals.append((float(w["end_s"]) - float(w["max_us"]) / 1e6, float(w["end_s"])))
        if intervals:
            return _merge(intervals), "spawn-windows"
    return [], None


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _is_queued(intervals: list[tuple[float, float]], t: float) -> bool:
    i = bisect.bisect_right(intervals, (t, math.inf)) - 1
    return i >= 0 and intervals[i][0] <= t < intervals[i][1]


def _activity(part: Any) -> tuple[str | None, Any]:
    for metric in ("util_gpu_pct", "engine_active_pct"):
        if metric in part.columns and part[metric].notna().any():
            return metric, part[metric].astype(float)
    return None, None


def _step_row(
    step: int, users: int, part: Any, procs: Any, queued: list[tuple[float, float]]
) -> GpuStepEvidence:
    first = part.iloc[0]
    mig = None if _nan(first["mig_instance"]) else int(first["mig_instance"])
    profile = first.get("mig_profile")
    profile = None if _nan(profile) else profile
    device = f"GPU {int(first['gpu_index'])}"
    if mig is not None:
        device += f" / MIG {mig}" + (f" ({profile})" if profile else "")
    metric, act = _activity(part)
    # one row per instant (several pods of one device share a scrape)
    per_t = part.drop_duplicates("t_s")
    idle_s = None
    if queued and act is not None:
        a = act.loc[per_t.index]
        idle_s = round(
            float(
                sum(
                    dt
                    for t, v, dt in zip(per_t["t_s"], a, per_t["_dt"], strict=True)
                    if not _nan(v) and v < IDLE_PCT and _is_queued(queued, float(t))
                )
            ),
            2,
        )
    used = part["mem_used_bytes"].dropna()
    total = part["mem_total_bytes"].dropna()
    peak = int(used.max()) if len(used) else None
    tot = int(total.max()) if len(total) else None
    head = tot - peak if peak is not None and tot is not None else None
    a = act.loc[per_t.index].dropna() if act is not None else None
    return GpuStepEvidence(
        step_index=step,
        users=users,
        device=device,
        source=str(first["source"]),
        gpu_index=int(first["gpu_index"]),
        gpu_uuid=str(first["gpu_uuid"]),
        mig_instance=mig,
        mig_profile=profile,
        metric=metric,
        samples=len(per_t),
        mean_util_pct=round(float(a.mean()), 2) if a is not None and len(a) else None,
        p95_util_pct=round(float(a.quantile(0.95)), 2) if a is not None and len(a) else None,
        idle_while_queued_s=idle_s,
        mem_used_peak_bytes=peak,
        mem_total_bytes=tot,
        mem_headroom_bytes=head,
        mem_headroom_pct=round(100 * head / tot, 2) if head is not None and tot else None,
        sharing_max=_sharing(part, procs, step, mig),
    )


def _sharing(part: Any, procs: Any, step: int, mig: int | None) -> int | None:
    first = part.iloc[0]
    if first["source"] == "dcgm":
        pods = part.dropna(subset=["pod"])
        if not len(pods):
            return 0
        return int(pods.groupby("t_s")["pod"].nunique().max())
    if procs is None or not len(procs) or "step_index" not in procs.columns:
        counted = part["processes"].dropna()
        return int(counted.max()) if len(counted) else None
    mine = procs[(procs["gpu_uuid"] == first["gpu_uuid"]) & (procs["step_index"] == step)]
    if mig is not None:
        mine = mine[mine["mig_instance"] == mig]
    if not len(mine):
        return 0
    return int(mine.groupby("t_s")["pid"].nunique().max())


def _measurements(
    rows: list[GpuStepEvidence],
    capacity_step: int | None,
    gpus: int,
    samples: Any,
    procs: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"gpu_count": gpus}
    if capacity_step is None:
        return out
    at = [r for r in rows if r.step_index == capacity_step]
    utils = [r.mean_util_pct for r in at if r.mean_util_pct is not None]
    if utils:
        out["gpu_util_pct"] = round(sum(utils) / len(utils), 2)
    upto = samples[(samples["step_index"] >= 0) & (samples["step_index"] <= capacity_step)]
    pct = 100 * upto["mem_used_bytes"] / upto["mem_total_bytes"]
    if pct.notna().any():
        out["gpu_mem_used_pct"] = round(float(pct.max()), 2)
    consumers = _consumers_at(samples, procs, capacity_step)
    if consumers is not None and gpus:
        out["gpu_users_per_gpu"] = round(consumers / gpus, 3)
    idle = [r.idle_while_queued_s for r in rows if r.step_index <= capacity_step]
    if any(v is not None for v in idle):
        # per device, summed over the steps up to capacity; the worst device stands for all
        per_device: dict[str, float] = {}
        for r in rows:
            if r.step_index <= capacity_step and r.idle_while_queued_s is not None:
                per_device[r.device] = per_device.get(r.device, 0.0) + r.idle_while_queued_s
        out["gpu_idle_while_queued_s"] = round(max(per_device.values()), 2)
    return out


def _consumers_at(samples: Any, procs: Any, step: int) -> int | None:
    """Most GPU consumers (processes or pods) on all GPUs together at one instant."""
    best = None
    dcgm = samples[(samples["source"] == "dcgm") & (samples["step_index"] == step)]
    if len(dcgm):
        pods = dcgm.dropna(subset=["pod"])
        keyed = pods.assign(_pod=pods["namespace"].fillna("") + "/" + pods["pod"])
        best = int(keyed.groupby("t_s")["_pod"].nunique().max()) if len(keyed) else 0
    if procs is not None and len(procs) and "step_index" in procs.columns:
        mine = procs[procs["step_index"] == step]
        if len(mine):
            n = int(mine.groupby("t_s")["pid"].nunique().max())
            best = n if best is None else max(best, n)
        elif best is None:
            best = 0
    return best


def plan_gpu_evidence(run: Any, plan: Any, policy: Any = None) -> GpuEvidence:
    """Evidence for a CapacityPlan: its steps, and its capacity step."""
    bad = next((s for s in plan.steps if s.verdict in ("fail", "no-data")), None)
    ran = [s for s in plan.steps if s.verdict != "not-run"]
    cap = bad.index if bad is not None else (ran[-1].index if ran else None)
    is_startup = policy.is_startup if policy is not None else None
    return gpu_evidence(run, [(s.index, s.users) for s in plan.steps], cap, is_startup)
