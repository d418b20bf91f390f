"""Scheduling evidence from the Kubernetes collector: user servers that waited for a GPU,
and pods the scheduler could not place.

Only FailedScheduling events that name a resource the nodes lack ("Insufficient cpu",
"Insufficient nvidia.com/gpu") count as conflicts: "1 pod has unbound immediate
PersistentVolumeClaims" (a user's claim not bound yet when KubeSpawner creates its pod, a
moment on a cluster with static volumes), taints or affinities are not a lack of capacity.
A pod waited for a GPU when the scheduler reported it ``FailedScheduling`` for want of
``nvidia.com/gpu`` (the collector's ``scheduling_conflicts``). Its spawn time splits in two:
waiting for a GPU (creation to scheduled) and starting (scheduled to ready). A pod never
scheduled waited at least until the run ended: its wait is a lower bound, and counted as
such. ``gpu_queue_wait_p95_ms`` is the nearest-rank p95 of the GPU pods' waits (with fewer
than 20 pods, the longest wait).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class PodWait:
    pod: str
    waited_for_gpu_s: float
    starting_s: float | None  # scheduled -> ready; None when it never got ready
    scheduled: bool  # False: waited_for_gpu_s is a lower bound (the run ended first)


@dataclass(frozen=True)
class SchedulingEvidence:
    pods_failed_scheduling: int
    resources: tuple[str, ...]  # resources the scheduler found short, e.g. cpu, nvidia.com/gpu
    gpu_waits: tuple[PodWait, ...]
    gpu_queue_wait_p95_ms: float | None

    @property
    def measurements(self) -> dict[str, Any]:
        return {
            "pods_failed_scheduling": self.pods_failed_scheduling,
            "gpu_queue_wait_p95_ms": self.gpu_queue_wait_p95_ms,
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resources"] = list(self.resources)
        d["gpu_waits"] = [asdict(w) for w in self.gpu_waits]
        return d


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _unix(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


def scheduling_evidence(run: Any) -> SchedulingEvidence | None:
    """The run's scheduling evidence, or None when no Kubernetes collector ran."""
    conflicts = run.table("scheduling_conflicts") if run is not None else None
    if conflicts is None:
        return None
    failed = conflicts[conflicts["kind"] == "failed-scheduling"] if len(conflicts) else conflicts
    # only pods the scheduler found short of a resource ("Insufficient cpu"): a pod that
    # waited for its volume claim to bind, a taint or an affinity is not a capacity problem
    if len(failed) and "resources" in failed.columns:
        failed = failed[failed["resources"].fillna("").astype(str).str.strip() != ""]
    resources = sorted(
        {r.strip() for text in failed.get("resources", []) for r in str(text).split(",") if r}
    )
    gpu_uids = {
        str(row["pod_uid"])
        for _, row in failed.iterrows()
        if GPU_RESOURCE in str(row.get("resources", ""))
    }
    records = run.table("startup_records")
    ended = _unix(run.read_manifest().extra.get("ended_at"))
    waits: list[PodWait] = []
    if gpu_uids and records is not None and len(records):
        for _, r in records[records["container_id"].astype(str).isin(gpu_uids)].iterrows():
            created = _finite(r.get("created_s")) or 0.0
            scheduled = _finite(r.get("scheduled_s"))
            ready = _finite(r.get("ready_s"))
            if scheduled is not None:
                start = ready - scheduled if ready is not None else None
                waits.append(PodWait(str(r["container"]), scheduled - created, start, True))
                continue
            born = _finite(r.get("creation_unix"))
            if born is not None and ended is not None:
                waits.append(PodWait(str(r["container"]), max(0.0, ended - born), None, False))
    p95 = None
    if waits:
        ordered = sorted(w.waited_for_gpu_s for w in waits)
        p95 = round(1000 * ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 1)
    return SchedulingEvidence(
        pods_failed_scheduling=int(failed["pod_uid"].nunique()) if len(failed) else 0,
        resources=tuple(resources),
        gpu_waits=tuple(waits),
        gpu_queue_wait_p95_ms=p95,
    )


__all__ = ["GPU_RESOURCE", "PodWait", "SchedulingEvidence", "scheduling_evidence"]
