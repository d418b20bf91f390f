"""The probe core (labcap.measure.probes.core) through a back-end that keeps its
"containers" in memory: what the Docker and Kubernetes probes share, tested once and in
milliseconds: the storms, every attempt accounted for, Ctrl-C and a lost source giving a
partial run, cleanup held safe from a second Ctrl-C, and a run directory that `labcap
plan` reads. The real back-ends are tested in tests/docker and tests/k8s."""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from labcap.collectors.base import CollectorStatus, RunContext, StartupRecord
from labcap.errors import LabcapError
from labcap.measure.probes import core
from labcap.measure.probes.core import (
    Attempt,
    BackendTraits,
    ManifestParts,
    ProbeRefused,
    Round,
    run_probe,
)
from labcap.measure.probes.docker import DockerProbe, StartupProbeSettings
from labcap.measure.probes.k8s import K8sProbeSettings, KubernetesProbe
from labcap.planner.capacity import plan_run

TRAITS = BackendTraits(
    target="memory",
    noun="boxes",
    storm_verb="opening",
    cleanup_note="closing the probe's boxes",
    lost_why="the box source was lost before it was ready",
    record_type=StartupRecord,
    fed_phases=("started", "running"),
    missing_ready_via="running",
    missing_reason="never seen",
    tables=("container_samples",),
    samples_table="container_samples",
)
NAN = math.nan


@dataclass
class Box:
    id: str
    name: str
    created_unix: float
    behaviour: str  # ready | exit | hang
    outcome: str | None = None
    reason: str = ""


class BoxCollector:
    """Times each box: ready (or exited) 20 ms after it was created; hang never settles."""

    name = "memory"

    def __init__(self) -> None:
        self.boxes: dict[str, Box] = {}
        self.started = self.stopped = False

    def start(self, ctx: RunContext) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def status(self) -> CollectorStatus:
        return CollectorStatus(self.name, True)

    def tables(self) -> dict[str, Any]:
        return {"container_samples": pd.DataFrame({"t_unix": [], "container_id": []})}

    def _settled(self, box: Box) -> bool:
        return box.outcome is not None or (
            box.behaviour != "hang" and time.time() - box.created_unix > 0.02
        )

    def terminal(self, ids: list[str]) -> set[str]:
        return {i for i in ids if i in self.boxes and self._settled(self.boxes[i])}

    def give_up(self, ids: list[str], reason: str) -> None:
        for i in ids:
            box = self.boxes[i]
            if not self._settled(box):
                box.outcome, box.reason = "timeout", reason

    def startup_records(self) -> list[StartupRecord]:
        return [self._record(b) for b in self.boxes.values()]

    def _record(self, b: Box) -> StartupRecord:
        ready = b.outcome is None and b.behaviour == "ready"
        exited = b.outcome is None and b.behaviour == "exit"
        outcome = "ready" if ready else "exited" if exited else (b.outcome or "timeout")
        return StartupRecord(
            container_id=b.id, container=b.name, image="box:1", service="", project="",
            t_unix=b.created_unix, origin="created", requested_s=0.0, pulled_s=NAN,
            created_s=0.0, started_s=0.01, running_s=0.015, healthy_s=NAN, http_ready_s=NAN,
            ready_s=0.02 if ready else NAN, ready_via="running",
            exited_s=0.02 if exited else NAN, clock_source="engine", outcome=outcome,
            exit_code=7.0 if exited else NAN, oom_killed=False, restarts=0,
            reason="exited with code 7" if exited else b.reason,
        )  # fmt: skip


@dataclass
class BoxProbe:
    """A probe back-end whose containers are boxes in memory; ``behave(step, k)`` picks
    what each does: ready | exit | hang (never ready) | pull-failed | create-failed."""

    behave: Any = lambda step, k: "ready"
    run_id: str = "r0"
    traits: BackendTraits = TRAITS
    collector: BoxCollector = field(default_factory=BoxCollector)
    removed: list[str] = field(default_factory=list)
    cleaned: int = 0
    lost_at_step: int | None = None  # lost_after says the source is gone after this step
    leftover: str = ""
    refuse: bool = False
    on_cleanup: Any = None
    on_wait: Any = None  # called in the wait for readiness (the main thread)

    def manifest_parts(self) -> ManifestParts:
        return ManifestParts(
            scenario={"box_size": 1}, hosts={"memory": "here"}, note="boxes in memory",
            probe={"shelf": "a"}, sections={"memory": {"shelves": 1}},
        )  # fmt: skip

    def start(self, ctx: RunContext) -> None:
        if self.refuse:
            raise ProbeRefused("memory: no boxes today", "no boxes today")

    def prepare(self, ctx: RunContext, progress: Any) -> None:
        self.collector.start(ctx)

    def creator(self, step_index: int, round_index: int, n: int) -> Any:
        def create(k: int) -> Attempt:
            name = f"box-{step_index}-{round_index}-{k}"
            behaviour = self.behave(step_index, k)
            now = time.time()
            if behaviour in ("pull-failed", "create-failed"):
                return Attempt(step_index, name, now, None, None, behaviour, f"{behaviour}!")
            box = self.collector.boxes[name] = Box(name, name, now, behaviour)
            return Attempt(step_index, name, now, 0.001, box.id)

        return create

    def remove(self, step_index: int, round_index: int, ids: list[str]) -> None:
        self.removed.extend(ids)

    def lost(self) -> bool:
        if self.on_wait:
            self.on_wait()
        return False

    def lost_after(self, last: Round) -> str:
        if self.lost_at_step == last.step_index:
            return f"lost the boxes during step {last.step_index + 1}"
        return ""

    def cleanup(self, progress: Any) -> str:
        if self.on_cleanup:
            self.on_cleanup()
        self.cleaned += 1
        return self.leftover

    def late_reasons(self, reasons: list[str]) -> list[str]:
        return []

    def probe_extra(self) -> dict[str, Any]:
        return {"boxes_seen": len(self.collector.boxes)}

    def startup_table(self, records: Any, levels: tuple[int, ...]) -> Any:
        return core.startup_table(records, levels)


def _settings(**kw: Any) -> StartupProbeSettings:
    base = {"image": "box:1", "concurrency": (1, 2), "timeout_s": 5.0, "interval_s": 0.2}
    return StartupProbeSettings(**{**base, **kw})


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def test_a_probe_leaves_a_run_directory_that_labcap_plan_reads(tmp_path):
    backend = BoxProbe()
    lines: list[str] = []
    result = run_probe(backend, _settings(repeat=2), tmp_path / "run", progress=lines.append)
    assert result.status == "complete" and result.reasons == ()
    assert [(r.concurrency, r.containers, r.ready) for r in result.rows] == [(1, 2, 2), (2, 4, 4)]
    assert result.rows[1].ready_p50_ms == 20.0 and result.rows[1].running_p95_ms == 15.0
    assert "step 2: opening 2 boxes at once (round 2)" in lines
    # every box was removed with its round, and the cleanup ran once
    assert sorted(backend.removed) == sorted(backend.collector.boxes) and backend.cleaned == 1
    out = tmp_path / "run"
    recs = pd.read_parquet(out / "startup_records.parquet")
    assert list(recs.columns) == [f.name for f in fields(StartupRecord)] + [
        "step_index", "round", "concurrency", "create_call_s", "t_s",
    ]  # fmt: skip
    assert list(zip(recs["step_index"], recs["round"], strict=True)) == [
        (0, 0), (0, 1), (1, 0), (1, 0), (1, 1), (1, 1),
    ]  # fmt: skip
    windows = pd.read_parquet(out / "windows.parquet")
    assert set(windows["endpoint"]) == {
        "startup.create_call", "startup.started", "startup.running", "startup.ready",
    }  # fmt: skip
    ready = windows[windows["endpoint"] == "startup.ready"]
    assert list(ready["requests"]) == [2, 4] and set(ready["method"]) == {"memory"}
    m = _manifest(out)
    assert m["status"] == "complete" and m["target"] == "memory" and m["pid"] == os.getpid()
    assert m["scenario"] == {
        "name": "probe-startup", "image": "box:1", "command": [], "box_size": 1,
        "repeat": 2, "timeout_s": 5.0,
    }  # fmt: skip
    assert m["hosts"] == {"memory": "here"} and m["memory"] == {"shelves": 1}
    assert m["probe"]["run_id"] == "r0" and m["probe"]["label"] == "labcap.probe=r0"
    assert m["probe"]["shelf"] == "a" and m["probe"]["boxes_seen"] == 6
    assert set(m["probe"]["step_duration_s"]) == {"0", "1"} and m["probe"]["slot_s"] > 0
    assert m["notes"][0] == "boxes in memory" and [c["name"] for c in m["collectors"]] == [
        "memory", "host",
    ]  # fmt: skip
    # the default SLO judges the slowest startup (max_ms), which 2 and 4 startups can carry
    assert m["slos"][0] == {"endpoint": "startup.ready", "metric": "max_ms", "threshold": 30000.0}
    assert [s.verdict for s in plan_run(str(out)).steps] == ["pass", "pass"]


def test_a_p95_slo_on_a_few_startups_is_inconclusive_not_a_pass(tmp_path):
    # 2 and 4 startups a step are too few for a p95 (planner.capacity.MIN_SAMPLES, issue 20):
    # the plan reads them as inconclusive and names the endpoint, not as a pass
    out = tmp_path / "run"
    run_probe(BoxProbe(), _settings(repeat=2, slos=("startup.ready:p95_ms=30000",)), out)
    plan = plan_run(str(out))
    assert [s.verdict for s in plan.steps] == ["inconclusive", "inconclusive"]
    assert "startup.ready" in {d.endpoint for d in plan.needs_more_data}


def test_a_rounds_creates_are_all_in_flight_together(tmp_path):
    together = threading.Barrier(4)

    def behave(step: int, k: int) -> str:
        if step == 1:
            together.wait(timeout=5)  # breaks unless all four creates are in flight together
        return "ready"

    result = run_probe(BoxProbe(behave), _settings(concurrency=(1, 4)), tmp_path / "run")
    assert result.rows[1].ready == 4 and not together.broken


def test_containers_that_never_get_ready_are_failures_with_their_reason(tmp_path):
    behave = {0: "exit", 1: "hang"}
    backend = BoxProbe(lambda step, k: behave[k])
    result = run_probe(backend, _settings(concurrency=(2,), timeout_s=0.3), tmp_path / "run")
    assert result.status == "complete"  # the probe ran; the step fails its SLO
    assert result.rows[0].outcomes == {"exited": 1, "timeout": 1}
    failures = pd.read_parquet(tmp_path / "run" / "failures.parquet")
    assert sorted(failures["reason"]) == [
        "ContainerNotReady: exited: exited with code 7",
        "ContainerNotReady: timeout: not ready within 0.3 s",
    ]
    assert plan_run(str(tmp_path / "run")).steps[0].verdict == "fail"


def test_an_attempt_the_collector_never_saw_keeps_a_record_of_its_own(tmp_path):
    backend = BoxProbe(lambda step, k: "create-failed" if k == 1 else "ready")
    result = run_probe(backend, _settings(concurrency=(2,)), tmp_path / "run")
    assert result.rows[0].outcomes == {"ready": 1, "create-failed": 1}
    recs = pd.read_parquet(tmp_path / "run" / "startup_records.parquet")
    failed = recs[recs["outcome"] == "create-failed"].iloc[0]
    assert failed["container"] == "box-0-0-1" and failed["reason"] == "create-failed!"
    assert failed["origin"] == "requested" and failed["ready_via"] == "running"
    assert failed["container_id"] == "" and math.isnan(failed["create_call_s"])
    assert all(math.isnan(failed[f"{p}_s"]) for p in core.RECORD_PHASES)


def test_when_no_image_can_be_had_the_probe_fails_with_that_reason_first(tmp_path):
    backend = BoxProbe(lambda step, k: "pull-failed")
    result = run_probe(backend, _settings(concurrency=(2,)), tmp_path / "run")
    assert result.status == "failed" and result.reasons == ("pull-failed!",)
    assert _manifest(tmp_path / "run")["status"] == "failed"
    assert plan_run(str(tmp_path / "run")).status == "failed"


def test_ctrl_c_while_waiting_removes_everything_and_keeps_a_partial_run(tmp_path):
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    started = []

    def ctrl_c_soon() -> None:  # a real SIGINT, once the round waits for readiness
        if not started:
            started.append(timer.start())

    backend = BoxProbe(lambda step, k: "hang", on_wait=ctrl_c_soon)
    result = run_probe(backend, _settings(concurrency=(2, 4), timeout_s=30), tmp_path / "run")
    assert result.interrupted and result.status == "partial"
    assert result.reasons == ("interrupted: the probe was stopped (SIGINT/SIGTERM)",)
    assert backend.cleaned == 1 and sorted(backend.removed) == ["box-0-0-0", "box-0-0-1"]
    assert backend.collector.stopped
    recs = pd.read_parquet(tmp_path / "run" / "startup_records.parquet")
    assert list(recs["outcome"]) == ["timeout", "timeout"]
    assert set(recs["reason"]) == {"interrupted before it was ready"}
    m = _manifest(tmp_path / "run")
    assert m["status"] == "partial" and m["ended_at"]
    steps = plan_run(str(tmp_path / "run")).steps
    assert steps[1].verdict in ("not-run", "no-data")


def test_a_second_ctrl_c_during_cleanup_is_held_off(tmp_path):
    backend = BoxProbe(on_cleanup=lambda: os.kill(os.getpid(), signal.SIGINT))
    result = run_probe(backend, _settings(), tmp_path / "run")  # no KeyboardInterrupt
    assert result.status == "complete" and backend.cleaned == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_lost_source_stops_the_storms_and_keeps_what_was_measured(tmp_path):
    backend = BoxProbe(lost_at_step=0)
    lines: list[str] = []
    out = tmp_path / "run"
    result = run_probe(backend, _settings(concurrency=(1, 2)), out, progress=lines.append)
    assert result.status == "partial" and result.reasons == ("lost the boxes during step 1",)
    assert "lost the boxes during step 1; writing what was measured" in lines
    assert [r.concurrency for r in result.rows] == [1] and backend.cleaned == 1
    plan = plan_run(str(out))
    assert plan.status == "partial" and plan.steps[0].verdict == "pass"
    assert plan.steps[1].verdict in ("not-run", "no-data")


def test_what_the_cleanup_could_not_remove_is_a_reason(tmp_path):
    backend = BoxProbe(leftover="1 boxes labelled labcap.probe=r0 could not be removed")
    result = run_probe(backend, _settings(concurrency=(1,)), tmp_path / "run")
    assert result.status == "partial"
    assert result.reasons == ("1 boxes labelled labcap.probe=r0 could not be removed",)


def test_a_refused_probe_leaves_a_failed_manifest_and_one_error(tmp_path):
    backend = BoxProbe(refuse=True)
    with pytest.raises(LabcapError, match="^memory: no boxes today$"):
        run_probe(backend, _settings(), tmp_path / "run")
    m = _manifest(tmp_path / "run")
    assert m["status"] == "failed" and m["status_reasons"] == ["no boxes today"]
    assert backend.cleaned == 0 and not backend.collector.started


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"image": ""}, "--image is required"),
        ({"concurrency": (0, 2)}, "positive whole numbers"),
        ({"repeat": 0}, "--repeat must be at least 1"),
        ({"timeout_s": 0}, "greater than zero"),
        ({"env": ("=x",)}, "use KEY=VALUE"),
        ({"slos": ("startup.ready:p96_ms=1",)}, "unknown metric"),
    ],
)
def test_both_probes_refuse_the_same_impossible_settings(kw, words):
    for settings in (StartupProbeSettings, K8sProbeSettings):
        with pytest.raises(LabcapError, match=words):
            core.validate_common(settings(**{"image": "x", **kw}))


def test_the_table_gives_phase_percentiles_in_ms_and_names_what_never_got_ready():
    recs = pd.DataFrame({
        "step_index": [0, 0, 0, 0, 1],
        "outcome": ["ready", "ready", "ready", "exited", "timeout"],
        "create_call_s": [0.01, 0.02, 0.03, 0.04, NAN],
        "running_s": [0.1, 0.2, 0.3, 0.4, NAN],
        "ready_s": [1.0, 2.0, 3.0, NAN, NAN],
    })  # fmt: skip
    first, second = core.startup_table(recs, (3, 1))
    assert (first.containers, first.ready, first.failed) == (4, 3, 1)
    assert first.create_call_p50_ms == 25.0 and first.running_p95_ms == 385.0
    assert (first.ready_p50_ms, first.ready_max_ms) == (2000.0, 3000.0)
    assert core.not_ready_line(first) == f"{'':>11} not ready: 1 exited"
    assert second.ready_p50_ms is None and second.outcomes == {"timeout": 1}
    assert core.startup_table(recs.iloc[:0], (1,)) == ()


def test_both_back_ends_implement_the_protocol_as_declared():
    methods = {
        n: inspect.signature(f)
        for n, f in vars(core.ProbeBackend).items()
        if inspect.isfunction(f) and not n.startswith("_")
    }
    assert len(methods) == 11
    for backend in (DockerProbe, KubernetesProbe, BoxProbe):
        for name, declared in methods.items():
            params = list(inspect.signature(getattr(backend, name)).parameters)
            assert params == list(declared.parameters), (backend.__name__, name)
        assert isinstance(backend.traits, BackendTraits)
