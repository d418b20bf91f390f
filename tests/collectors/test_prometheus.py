"""--prometheus-url: a real `labcap run` reads a real Prometheus on loopback (scraping a real
node-exporter, and a stand-in for cAdvisor and dcgm-exporter, which cannot run here), and
the planner's contention rules fire from what it stored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from labcap.collectors.prometheus import scrape_interval_s
from tests.support.cli import labcap
from tests.support.prometheus import free_port, missing_binaries, prometheus_stack
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parents[1] / "support"
LOCUSTFILE = SUPPORT / "locustfile_target.py"

needs_prometheus = pytest.mark.skipif(
    bool(missing_binaries()),
    reason=f"not installed: {', '.join(missing_binaries())} (scripts/bootstrap.sh as root)",
)


@pytest.fixture(scope="module")
def target():
    with loopback_server("target_server.py") as url:
        yield url


@pytest.fixture(scope="module")
def prom():
    with prometheus_stack() as stack:
        yield stack


def _run(target: str, out: Path, *extra: str):
    return labcap(
        "run",
        "--host",
        target,
        "--scenario",
        str(LOCUSTFILE),
        "--users",
        "1,2",
        "--step-duration",
        "6s",
        "--settle",
        "1s",
        "--window",
        "1s",
        "--gpu",
        "none",
        "--no-calibrate",
        "--out",
        str(out),
        *extra,
    )


@needs_prometheus
def test_run_stores_the_labs_metrics_per_step_and_the_planner_uses_them(tmp_path, target, prom):
    out = tmp_path / "run"
    r = _run(target, out, "--prometheus-url", prom.url)
    assert r.returncode == 0, r.stderr
    assert "collector prometheus: node-exporter" in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    [status] = [c for c in manifest["collectors"] if c["name"] == "prometheus"]
    assert status["available"] and status["warnings"] == []
    assert status["reason"] == "found: node-exporter, cAdvisor, dcgm-exporter; absent: nothing"

    # node-exporter (real): this machine's CPU and I/O wait, each step, marked prometheus
    host = pd.read_parquet(out / "host_samples.parquet")
    node = host[host["source"] == "prometheus"]
    assert set(node["instance"]) == {prom.node_exporter}
    assert {0, 1} <= set(node["step_index"])  # -1: before the load began
    assert node["cpu_pct"].between(0, 100).all() and node["iowait_pct"].between(0, 100).all()
    assert (node["mem_total_bytes"] > node["mem_used_bytes"]).all()
    assert (host["source"] == "psutil").any()  # the local host collector's rows stay apart
    modes = pd.read_parquet(out / "host_cpu_modes.parquet")
    assert {"idle", "iowait", "user", "system"} <= set(modes["mode"])
    assert {0, 1} <= set(modes[modes["mode"] == "iowait"]["step_index"])

    # cAdvisor-shaped (stand-in): throttling 6 of 10 CFS periods, each step; the
    # cgroup root's aggregate (image="") is left out
    cont = pd.read_parquet(out / "container_samples.parquet")
    assert set(cont["source"]) == {"prometheus"}
    assert set(cont["container"]) == {"jupyter-alice"} and set(cont["service"]) == {"jupyter"}
    assert set(cont["container_id"]) == {"ab" * 32}
    assert {0, 1} <= set(cont["step_index"])
    # per step (a rate's first points, within four scrapes of the exporter's start, only see
    # part of its window: they read low, e.g. 20 % and 33 % for a 50 % CPU)
    per_step = cont[cont["step_index"] >= 0].groupby("step_index")
    throttled, cpu = per_step["cpu_throttled_pct"].median(), per_step["cpu_pct"].median()
    assert throttled.between(55, 65).all(), throttled.tolist()
    assert cpu.between(45, 55).all(), cpu.tolist()
    assert (cont["mem_limit_bytes"] == 2**30).all()

    # dcgm-shaped (stand-in): the GPU table the NVML and dcgm collectors fill
    gpu = pd.read_parquet(out / "gpu_samples.parquet")
    assert set(gpu["source"]) == {"prometheus"} and {0, 1} <= set(gpu["step_index"])
    assert (gpu["util_gpu_pct"] == 87).all() and (gpu["mem_used_bytes"] == 12000 * 2**20).all()
    assert (gpu["mem_total_bytes"] == 40000 * 2**20).all()

    # the planner: a remote target's iowait comes from node-exporter, throttling from cAdvisor
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "schema_version: 1\nrules:\n  - id: storage-io-limit\n"
        "    when: {metric: iowait_pct, op: '>=', value: 0}\n"
    )
    p = labcap("plan", str(out), "--expected-users", "2", "--policy", str(policy), "--json")
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)["recommendation"]
    fired = {reason["rule"]: reason for reason in rec["reasons"]}
    assert 55 <= fired["cpu-contention"]["measured"]["cpu_throttled_pct"] <= 65
    assert rec["measurements"]["mem_used_pct"] == 50.0  # 512 MiB of the 1 GiB limit
    assert rec["measurements"]["oom_kills"] == 0
    assert fired["storage-io-limit"]["measured"]["iowait_pct"] == pytest.approx(
        round(node[node["step_index"] == 1]["iowait_pct"].mean(), 1)
    )

    # the report charts the lab's host apart from the machine labcap ran on
    html = tmp_path / "report.html"
    assert labcap("report", str(out), "-o", str(html)).returncode == 0
    text = html.read_text().replace("&#39;", "'")
    assert f"<h2>The lab's host {prom.node_exporter} (node-exporter" in text
    assert "Host resources (the machine labcap ran on)" in text


@needs_prometheus
def test_without_prometheus_a_remote_run_has_no_contention_inputs(tmp_path, target):
    """The counter-check: the same run without --prometheus-url leaves both rules unevaluated."""
    out = tmp_path / "run"
    assert _run(target, out).returncode == 0
    p = labcap("plan", str(out), "--expected-users", "2", "--json")
    rec = json.loads(p.stdout)["recommendation"]
    not_evaluated = {n["rule"] for n in rec["not_evaluated"]}
    assert "cpu-contention" in not_evaluated  # no container figures without cAdvisor
    # a loopback target runs on this machine, so its I/O wait may come from the host
    # collector (issue 20), but never from a node-exporter
    host = pd.read_parquet(out / "host_samples.parquet")
    assert not (host["source"] == "prometheus").any()


@pytest.mark.parametrize(
    "url, says",
    [
        ("ftp://127.0.0.1:9090", "is not an http(s) base URL"),
        ("http://127.0.0.1:{closed}", "no answer"),
        ("{target}", "not a Prometheus HTTP API"),
    ],
)
def test_a_bad_or_silent_prometheus_is_one_line_before_the_run(tmp_path, target, url, says):
    out = tmp_path / "run"
    r = _run(target, out, "--prometheus-url", url.format(closed=free_port(), target=target))
    assert r.returncode == 2
    [line] = r.stderr.strip().splitlines()
    assert "--prometheus-url" in line and says in line
    assert not out.exists()  # nothing ran


def test_scrape_interval_from_the_servers_config():
    assert scrape_interval_s("global:\n  scrape_interval: 1m30s\n") == 90
    assert scrape_interval_s("global:\n  scrape_interval: 500ms\n") == 0.5
    assert scrape_interval_s("global: {}\n") == 15  # Prometheus's own default
    assert scrape_interval_s(": not yaml [") == 15
