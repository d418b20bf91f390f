"""DockerCollector against a real engine: phases, engine agreement, Compose, outcomes."""

from __future__ import annotations

import threading
import time

import pytest

from labcap.collectors.docker import (
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    HTTP_PORT_LABEL,
    DockerCollector,
    DockerSettings,
    parse_engine_time,
)
from tests.docker.engine import TEST_IMAGE, TEST_LABEL, free_port


def _collector(client, tag: str, **kw) -> DockerCollector:
    settings = DockerSettings(labels=(f"{TEST_LABEL}={tag}",), name_patterns=(), **kw)
    c = DockerCollector(settings, client=client)
    c.start(None)
    assert c.status().available, c.status().reason
    return c


def _run(client, tag: str, *, http: bool = True, delay: float = 0.2, labels=None, **kw) -> str:
    port = free_port()
    all_labels = {TEST_LABEL: tag, **(labels or {})}
    if http:
        all_labels[HTTP_PORT_LABEL] = str(port)
    cid = client.api.create_container(
        TEST_IMAGE,
        environment={"PORT": str(port), "START_DELAY": str(delay)},
        labels=all_labels,
        host_config=client.api.create_host_config(network_mode="host"),
        **kw,
    )["Id"]
    client.api.start(cid)
    return cid


def _wait_terminal(col: DockerCollector, ids: list[str], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while len(col.terminal(ids)) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _finish(client, col: DockerCollector, ids: list[str]) -> dict:
    col.give_up(ids, "test over")
    for cid in ids:
        client.api.remove_container(cid, force=True)
    col.stop()
    return {r.container_id: r for r in col.startup_records()}


def _ordered(r) -> None:
    assert r.created_s == 0.0
    assert 0 < r.started_s <= r.running_s, r  # process started, then the engine said so
    assert r.running_s <= r.healthy_s and r.running_s <= r.http_ready_s
    assert r.ready_s == r.http_ready_s and r.ready_via == "http"
    assert r.outcome == "ready" and r.reason == ""


def test_single_start_records_every_phase_in_order(docker_client):
    col = _collector(docker_client, "single")
    cid = _run(docker_client, "single", delay=0.3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait for the health check as well
        recs = {r.container_id: r for r in col.startup_records()}
        if cid in recs and recs[cid].healthy_s == recs[cid].healthy_s:
            break
        time.sleep(0.05)
    r = _finish(docker_client, col, [cid])[cid]
    _ordered(r)
    assert r.http_ready_s >= 0.3  # the server sleeps START_DELAY before it listens
    assert r.clock_source == "engine+labcap" and r.origin == "created"
    assert r.image == TEST_IMAGE and r.restarts == 0 and not r.oom_killed


def test_concurrent_starts_agree_with_the_engines_own_timestamps(docker_client):
    """Collector phases vs an independent read of the engine's events and inspect data."""
    since = int(time.time()) - 1
    raw: list[dict] = []
    stream = docker_client.events(
        decode=True, since=since, filters={"type": "container", "label": f"{TEST_LABEL}=storm"}
    )

    def read() -> None:
        for ev in stream:
            raw.append(ev)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    col = _collector(docker_client, "storm")
    ids: list[str] = []
    threads = [
        threading.Thread(target=lambda: ids.append(_run(docker_client, "storm"))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _wait_terminal(col, ids)
    started_at = {
        cid: parse_engine_time(docker_client.api.inspect_container(cid)["State"]["StartedAt"])
        for cid in ids
    }
    time.sleep(1.5)  # let the 500 ms health checks report
    recs = _finish(docker_client, col, ids)
    stream.close()
    engine = {}
    for ev in raw:
        first = (ev["id"], ev["Action"].split(":")[0])
        engine.setdefault(first, ev["timeNano"])
    assert len(recs) == 4
    for cid in ids:
        r = recs[cid]
        _ordered(r)
        created_ns = engine[(cid, "create")]
        assert abs(r.t_unix - created_ns / 1e9) < 1e-6
        assert abs(r.t_unix + r.running_s - engine[(cid, "start")] / 1e9) < 2e-6
        assert abs(r.t_unix + r.started_s - started_at[cid] / 1e9) < 2e-6
        assert abs(r.t_unix + r.healthy_s - engine[(cid, "health_status")] / 1e9) < 2e-6


def test_compose_project_is_discovered_by_its_labels(docker_client):
    def labels(project: str, service: str) -> dict:
        return {COMPOSE_PROJECT: project, COMPOSE_SERVICE: service, TEST_LABEL: "compose"}

    before = _run(docker_client, "compose", http=False, labels=labels("demo", "db"))
    col = DockerCollector(
        DockerSettings(compose_project="demo", name_patterns=(), interval_s=0.2),
        client=docker_client,
    )
    col.start(None)
    ids = [
        _run(docker_client, "compose", labels=labels("demo", "web")),
        _run(docker_client, "compose", labels=labels("other", "web")),
    ]
    _wait_terminal(col, ids[:1])
    time.sleep(0.6)  # a few resource samples
    recs = _finish(docker_client, col, ids)
    docker_client.api.remove_container(before, force=True)
    assert set(recs) == {ids[0]}  # not the other project; not the one already running
    assert recs[ids[0]].project == "demo" and recs[ids[0]].service == "web"
    samples = col.tables()["container_samples"]
    assert set(samples["container_id"]) == {before, ids[0]}  # both demo containers sampled
    assert set(samples["service"]) == {"db", "web"}
    assert samples["source"].str.startswith("cgroup-v").all()
    assert (samples["mem_bytes"] > 0).all() and (samples["mem_limit_bytes"] > 0).all()
    assert samples["cpu_pct"].dropna().ge(0).all()


def test_a_container_that_exits_at_once_is_reported_with_its_exit_code(docker_client):
    col = _collector(docker_client, "exits")
    cid = _run(docker_client, "exits", command=["sh", "-c", "exit 3"])
    _wait_terminal(col, [cid])
    r = _finish(docker_client, col, [cid])[cid]
    assert r.outcome == "exited" and r.exit_code == 3
    assert "exited with code 3" in r.reason
    assert r.running_s <= r.exited_s and r.ready_s != r.ready_s  # NaN: never ready


def test_a_container_that_never_becomes_healthy_is_reported_unhealthy(docker_client):
    col = _collector(docker_client, "sick")
    cid = _run(
        docker_client,
        "sick",
        http=False,
        healthcheck={
            "test": ["CMD", "false"],
            "interval": 100_000_000,
            "retries": 1,
            "start_period": 1_000_000,  # the image has 60 s; failures in it do not count
        },
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if docker_client.api.inspect_container(cid)["State"]["Health"]["Status"] == "unhealthy":
            break
        time.sleep(0.1)
    time.sleep(0.2)
    r = _finish(docker_client, col, [cid])[cid]
    assert r.outcome == "unhealthy" and r.ready_via == "healthcheck"
    assert "health check failing" in r.reason
    assert r.healthy_s != r.healthy_s and r.running_s > 0


def test_stats_stream_fallback_when_cgroup_files_are_unreadable(docker_client):
    col = _collector(docker_client, "stats", interval_s=0.5, cgroup_root="/nonexistent")
    cid = _run(docker_client, "stats", http=False)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not len(col.tables()["container_samples"]):
        time.sleep(0.2)
    _finish(docker_client, col, [cid])
    samples = col.tables()["container_samples"]
    assert len(samples) and set(samples["source"]) == {"stats"}
    assert (samples["mem_bytes"] > 0).all()
    assert any("stats stream" in w for w in col.status().warnings)


@pytest.mark.parametrize(
    "host, words",
    [
        ("unix:///tmp/labcap-no-such-dir/docker.sock", "no Docker socket"),
        ("tcp://127.0.0.1:9", "refuses connections"),
    ],
)
def test_an_absent_engine_makes_the_collector_unavailable_not_a_crash(monkeypatch, host, words):
    monkeypatch.setenv("DOCKER_HOST", host)
    col = DockerCollector(DockerSettings())
    col.start(None)
    st = col.status()
    assert not st.available and words in st.reason, st.reason
    col.stop()
    assert list(col.tables()) == ["startup_records", "container_samples"]
