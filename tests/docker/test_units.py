"""The Docker collector's and probe's pure parts, on real files; no engine needed."""

from __future__ import annotations

import pandas as pd
import pytest

from labcap.collectors.docker import (
    DockerSettings,
    _from_stats,
    contention_by_step,
    locate_cgroup,
    parse_engine_time,
    read_cgroup,
)
from labcap.errors import LabcapError
from labcap.measure.probes.docker import StartupProbeSettings, validate
from labcap.model import build_plan
from tests.support.cli import invoke

CID = "ab" * 32


def test_engine_times_keep_their_nanoseconds():
    ns = parse_engine_time("2026-11-27T19:06:37.747670207Z")
    assert ns % 1_000_000_000 == 747_670_207
    assert parse_engine_time("2026-11-27T19:06:37Z") % 1_000_000_000 == 0
    assert parse_engine_time("2026-11-27T20:06:37.5+01:00") == parse_engine_time(
        "2026-11-27T19:06:37.500000000Z"
    )
    assert parse_engine_time("0001-01-01T00:00:00Z") is None  # the engine's "never"
    assert parse_engine_time("") is None and parse_engine_time(None) is None


def _v2_host(tmp_path, rel: str):
    """A cgroup v2 layout: mountinfo, /proc/<pid>/cgroup and the container's files."""
    root = tmp_path / "cgroup"
    d = root / rel
    d.mkdir(parents=True)
    (d / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (d / "memory.current").write_text("10485760\n")
    (d / "memory.max").write_text("max\n")
    (d / "memory.stat").write_text("anon 8388608\ninactive_file 2097152\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "io.stat").write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(
        f"30 25 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    )
    (proc / "4242").mkdir()
    (proc / "4242" / "cgroup").write_text(f"0::/{rel}\n")
    return DockerSettings(cgroup_root=str(root), proc_root=str(proc))


@pytest.mark.parametrize("rel", [f"system.slice/docker-{CID}.scope", f"docker/{CID}"])
def test_cgroup_v2_files_are_found_and_read(tmp_path, rel):
    settings = _v2_host(tmp_path, rel)
    paths = locate_cgroup(CID, 4242, settings)
    assert paths is not None and paths.version == 2 and str(paths.memory).endswith(rel)
    r = read_cgroup(paths)
    assert r.cpu_ns == 2_500_000_000
    assert r.mem_bytes == 10485760 - 2097152  # without the inactive page cache
    assert r.mem_limit_bytes is None and r.oom_kills == 1
    assert (r.read_bytes, r.write_bytes) == (4096, 8192)
    # no pid (the container already stopped): the usual places are tried
    assert locate_cgroup(CID, None, settings) == paths


def test_unreadable_cgroups_mean_the_stats_fallback(tmp_path):
    settings = DockerSettings(cgroup_root=str(tmp_path / "none"), proc_root=str(tmp_path))
    assert locate_cgroup(CID, 1, settings) is None


def test_a_stats_document_becomes_a_reading():
    doc = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 20_000_000_000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 10e9},
        "memory_stats": {"usage": 5000, "limit": 100000, "stats": {"total_inactive_file": 1000}},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"op": "Read", "value": 10},
                {"op": "Write", "value": 20},
            ]
        },
    }
    reading, cpu_pct = _from_stats(doc)
    assert cpu_pct == pytest.approx(20.0)  # 1 s of CPU over 10 s of 2 CPUs' time, x2 CPUs
    assert (reading.mem_bytes, reading.mem_limit_bytes) == (4000, 100000)
    assert (reading.read_bytes, reading.write_bytes) == (10, 20)
    assert _from_stats({"memory_stats": {}}) == (None, _from_stats(None)[1])


def test_contention_names_what_crossed_its_threshold():
    plan = build_plan((1, 4), 10, settle_s=0, window_s=10, spawn_rate=4)
    host = pd.DataFrame(
        {
            "step_index": [0, 0, 1, 1],
            "cpu_pct": [20.0, 30.0, 85.0, 97.0],
            "iowait_pct": [0.0, 0.0, 1.0, 2.0],
            "mem_used_bytes": [10, 10, 95, 95],
            "mem_total_bytes": [100] * 4,
        }
    )
    samples = pd.DataFrame(
        {
            "step_index": [0, 0, 1, 1],
            "t_unix": [1.0, 2.0, 11.0, 12.0],
            "container_id": ["a", "a", "a", "a"],
            "cpu_pct": [5.0, 5.0, 50.0, 60.0],
            "mem_bytes": [10, 10, 10, 10],
            "mem_limit_bytes": [100] * 4,
            "oom_kills": [0, 0, 1, 2],
            "restarts": [0, 0, 0, 1],
        }
    )
    rows = contention_by_step(samples, host, None, plan)
    assert rows[0]["signals"] == [] and rows[0]["host_cpu_pct_max"] == 30.0
    assert rows[1]["signals"] == ["cpu-saturated", "memory-pressure", "oom-kills", "restarts"]
    assert (rows[1]["oom_kills"], rows[1]["restarts"]) == (2, 1)


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"concurrency": (1, 4), "port": "8080"}, "--port auto"),
        ({"port": "http"}, "port number or auto"),
        ({"repeat": 0}, "--repeat"),
        ({"env": ("NOEQUALS",)}, "KEY=VALUE"),
        ({"slos": ("startup.ready:p96_ms=1",)}, "unknown metric"),
    ],
)
def test_impossible_probe_settings_are_refused_before_anything_starts(kw, words):
    with pytest.raises(LabcapError, match=words.replace("+", r"\+")):
        validate(StartupProbeSettings(image="x", **kw))


def test_probe_cli_bad_input_exits_2_with_one_line():
    r = invoke("probe", "startup", "--image", "x", "--concurrency", "0")
    assert r.exit_code == 2 and "positive whole number" in r.output
    r = invoke("run", "--host", "http://x", "--compose-project", "p")
    assert r.exit_code == 2 and "--compose-project needs --target docker" in r.output
