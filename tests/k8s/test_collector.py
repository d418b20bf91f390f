"""The Kubernetes collector against the real test cluster (tests/k8s/conftest.py): startup
phases in order, watch expiry (410 Gone) without loss or double counting, scheduling
conflicts with their reasons, a missing image, node inventory."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from labcap.collectors.base import StartupRecord
from labcap.collectors.kubernetes import KubernetesCollector, KubernetesSettings
from tests.k8s.cluster import wait_for

SELECTOR = "app=labcap-test"


def _collector(k8s_cluster, ns: str, **kw) -> KubernetesCollector:
    settings = KubernetesSettings(namespaces=(ns,), selector=SELECTOR, **kw)
    c = KubernetesCollector(settings, api_client=k8s_cluster.api_client())
    c.start()
    assert c.status().available, c.status().reason
    return c


def _create(k8s_cluster, ns: str, names: list[str], **spec) -> list[str]:
    core = k8s_cluster.core()

    def one(name: str) -> str:
        return core.create_namespaced_pod(ns, k8s_cluster.pod_manifest(name, **spec)).metadata.uid

    with ThreadPoolExecutor(max_workers=len(names)) as pool:  # created at once
        return list(pool.map(one, names))


def _wait_terminal(c: KubernetesCollector, uids: list[str], timeout_s: float = 120) -> None:
    wait_for(
        lambda: len(c.terminal(uids)) == len(uids), timeout_s, f"{len(uids)} pods settled", 0.1
    )


def _records(c: KubernetesCollector) -> dict[str, object]:
    return {r.container_id: r for r in c.startup_records()}


PHASE_ORDER = ("created_s", "scheduled_s", "initialized_s", "started_s", "running_s",
               "containers_ready_s", "ready_s")  # fmt: skip


def test_phases_recorded_and_ordered_for_single_and_concurrent_starts(k8s_cluster):
    with k8s_cluster.namespace() as ns:
        c = _collector(k8s_cluster, ns)
        try:
            single = _create(k8s_cluster, ns, ["single"])
            _wait_terminal(c, single)
            storm = _create(k8s_cluster, ns, [f"storm-{i}" for i in range(4)])
            _wait_terminal(c, storm)
            # the kubelet's Pulled events trail the pod updates a little
            wait_for(lambda: all(r.image_pull for r in c.startup_records()), 30, "Pulled events")
        finally:
            c.stop()
        recs = _records(c)
        assert set(recs) == set(single + storm)
        for r in recs.values():
            assert r.outcome == "ready" and r.origin == "created", r
            phases = [getattr(r, p) for p in PHASE_ORDER]
            assert not any(math.isnan(v) for v in phases), r
            assert phases == sorted(phases), f"{r.container}: {phases}"
            assert r.created_s == 0.0 and r.clock_source == "watch"
            assert r.node == k8s_cluster.node and r.project == ns and not r.watch_gap
            # the API server's own 1 s timestamps, kept beside the watch clock
            conds = [
                r.scheduled_cond_s,
                r.initialized_cond_s,
                r.containers_ready_cond_s,
                r.ready_cond_s,
            ]  # noqa: E501
            assert conds == sorted(conds) and conds[0] >= 0, conds
            assert r.image_pull == "present"  # imagePullPolicy Never: no pull, and it says so
            assert math.isnan(r.pulled_s)
        tables = c.tables()
        frame = tables["startup_records"]
        assert list(frame.columns[: len(StartupRecord.__dataclass_fields__)]) == list(
            StartupRecord.__dataclass_fields__
        )
        nodes = tables["node_inventory"]
        mine = nodes[nodes["node"] == k8s_cluster.node]
        assert len(mine) >= 2  # at start and at stop
        assert (mine["cpu_allocatable_m"] > 0).all() and (mine["mem_allocatable_bytes"] > 0).all()
        assert mine["ready"].all()
        # No conflict of scheduling or capacity. On a busy 2-core node the kubelet may
        # report a transient FailedMount / FailedCreatePodSandBox for a pod that then
        # starts (seen in CI): that is a real event, recorded as it should be, and all
        # that may appear here; it must name one of the pods this test started.
        conflicts = tables["scheduling_conflicts"]
        assert set(conflicts["kind"]) <= {"pod-setup"}, conflicts.to_dict("records")
        assert set(conflicts["pod_uid"]) <= set(recs), conflicts.to_dict("records")
        assert (conflicts["source"] == "event").all()
        assert c.status().warnings == ()


def test_watch_expiry_mid_run_loses_and_double_counts_nothing(k8s_cluster):
    with k8s_cluster.namespace() as ns:
        # watch_timeout_s=1: the server ends every watch after a second (normal resume);
        # expire_watches(): the next watch asks for resourceVersion 1 -> 410 Gone -> re-list
        c = _collector(k8s_cluster, ns, watch_timeout_s=1)
        try:
            first = _create(k8s_cluster, ns, [f"a-{i}" for i in range(3)])
            c.expire_watches()
            second = _create(k8s_cluster, ns, [f"b-{i}" for i in range(3)])
            _wait_terminal(c, first + second)
            c.expire_watches()
            wait_for(lambda: c.watch_resumes >= 2, 30, "a second 410 re-list")
            time.sleep(2.5)  # several server-side watch timeouts later
        finally:
            c.stop()
        assert c.watch_resumes >= 2 and c.watch_restarts >= 2
        frame = c.tables()["startup_records"]
        assert sorted(frame["container_id"]) == sorted(first + second)  # each once
        assert (frame["outcome"] == "ready").all()
        assert frame["ready_s"].notna().all()
        assert c.status().warnings == ()  # a 410 is routine, not a gap in the evidence


def test_unschedulable_pods_are_conflicts_with_their_reason(k8s_cluster):
    too_big = {"containers": [_container(k8s_cluster, requests={"cpu": "1000"})]}
    gpu = {"containers": [_container(k8s_cluster, limits={"nvidia.com/gpu": "1"})]}
    with k8s_cluster.namespace() as ns:
        c = _collector(k8s_cluster, ns, pending_threshold_s=2)
        try:
            core = k8s_cluster.core()
            for name, spec in (("too-big", too_big), ("wants-gpu", gpu)):
                body = k8s_cluster.pod_manifest(name)
                body["spec"].update(spec)
                core.create_namespaced_pod(ns, body)

            def flagged():
                t = c.tables()["scheduling_conflicts"]
                kinds = set(zip(t["pod"], t["kind"], strict=True))
                want = {
                    (p, k)
                    for p in ("too-big", "wants-gpu")
                    for k in ("failed-scheduling", "pending")
                }
                return [t] if want <= kinds else None

            (t,) = wait_for(flagged, 60, "FailedScheduling and Pending for both pods")
        finally:
            c.stop()
        fs = t[t["kind"] == "failed-scheduling"].set_index("pod")
        assert fs.index.is_unique and (fs["count"] >= 1).all()  # retries add up in one row
        assert fs.loc["too-big", "resources"] == "cpu"
        assert fs.loc["wants-gpu", "resources"] == "nvidia.com/gpu"
        assert "Insufficient nvidia.com/gpu" in fs.loc["wants-gpu", "message"]
        assert (fs["source"] == "event").all()
        recs = {r.container: r for r in c.startup_records()}
        assert recs["too-big"].outcome == "unschedulable"
        assert "Insufficient cpu" in recs["too-big"].reason
        assert recs["wants-gpu"].outcome == "unschedulable"
        assert math.isnan(recs["wants-gpu"].scheduled_s)


def test_an_image_missing_on_the_node_is_reported(k8s_cluster):
    with k8s_cluster.namespace() as ns:
        c = _collector(k8s_cluster, ns)
        try:
            body = k8s_cluster.pod_manifest("no-image")
            body["spec"]["containers"][0]["image"] = "labcap-test/absent:0"
            uid = k8s_cluster.core().create_namespaced_pod(ns, body).metadata.uid
            _wait_terminal(c, [uid], 60)
            wait_for(
                lambda: (
                    (t := c.tables()["scheduling_conflicts"]).shape[0]
                    and (t["source"] == "event").any()
                ),
                30,
                "the kubelet's event",
            )
        finally:
            c.stop()
        (r,) = c.startup_records()
        assert r.outcome == "pull-failed"
        assert r.reason.startswith("ErrImageNeverPull"), r.reason
        assert not math.isnan(r.scheduled_s) and math.isnan(r.ready_s)
        t = c.tables()["scheduling_conflicts"]
        assert set(t["kind"]) == {"image"}
        assert "ErrImageNeverPull" in set(t["reason"])


def _container(k8s_cluster, **resources) -> dict:
    return {
        "name": "main",
        "image": k8s_cluster.test_image,
        "imagePullPolicy": "Never",
        "command": ["sleep", "3600"],
        "resources": resources,
    }


@pytest.fixture(autouse=True)
def _no_probe_namespaces_left(k8s_cluster):
    yield
    left = [
        n.metadata.name
        for n in k8s_cluster.core().list_namespace().items
        if n.metadata.name.startswith("labcap-probe-") and n.status.phase != "Terminating"
    ]
    assert not left, left


def test_a_crashing_container_is_recorded_with_its_restarts(k8s_cluster):
    with k8s_cluster.namespace() as ns:
        c = _collector(k8s_cluster, ns)
        try:
            body = k8s_cluster.pod_manifest("crasher", command=["sh", "-c", "sleep 1; exit 3"])
            k8s_cluster.core().create_namespaced_pod(ns, body)

            def restarted():
                t = c.tables()["scheduling_conflicts"]
                return [t] if (t["kind"] == "restart").any() else None

            (t,) = wait_for(restarted, 90, "a restart of the crashing container")
        finally:
            c.stop()
        (r,) = c.startup_records()
        assert r.restarts >= 1  # it was Ready for a second first: the startup itself succeeded
        assert r.outcome == "ready" and not math.isnan(r.ready_s)
        assert (t[t["kind"] == "restart"]["pod"] == "crasher").all()
