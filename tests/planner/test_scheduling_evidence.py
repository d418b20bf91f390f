"""Which FailedScheduling events are capacity conflicts (planner/scheduling.py): those that
name a resource the nodes lack. The messages are the scheduler's own (Kubernetes 1.20,
recorded by the collector on the test cluster): an unbound PersistentVolumeClaim fired
`scheduling-conflicts` ("insufficient resources") in a real K3s-profile run."""

from __future__ import annotations

import pandas as pd

from labcap.collectors.kubernetes import insufficient_resources
from labcap.planner.scheduling import scheduling_evidence
from labcap.store import RunDir
from tests.support.runs import synthetic_run

UNBOUND = "0/1 nodes are available: 1 pod has unbound immediate PersistentVolumeClaims."
TAINT = "0/1 nodes are available: 1 node(s) had taint {x: y}, that the pod didn't tolerate."
SHORT_CPU = "0/1 nodes are available: 1 Insufficient cpu."
SHORT_GPU = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."


def _run_with(tmp_path, messages: list[str]) -> RunDir:
    path = synthetic_run(tmp_path / "run", seed=1)
    rows = [
        {"kind": "failed-scheduling", "pod": f"jupyter-u{i}", "pod_uid": f"uid-{i}",
         "message": m, "resources": ",".join(insufficient_resources(m))}
        for i, m in enumerate(messages)
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(path / "scheduling_conflicts.parquet")
    return RunDir.open(path)


def test_an_unbound_claim_or_a_taint_is_not_a_capacity_conflict(tmp_path):
    evidence = scheduling_evidence(_run_with(tmp_path, [UNBOUND, TAINT]))
    assert evidence is not None
    assert evidence.pods_failed_scheduling == 0 and evidence.resources == ()


def test_pods_short_of_a_resource_are_counted_once_each(tmp_path):
    evidence = scheduling_evidence(_run_with(tmp_path, [UNBOUND, SHORT_CPU, SHORT_GPU]))
    assert evidence.pods_failed_scheduling == 2
    assert evidence.resources == ("cpu", "nvidia.com/gpu")
