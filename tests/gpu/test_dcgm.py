"""dcgm-exporter: a real loopback HTTP endpoint serving the exporter's text (MIG labels
included), read through prometheus_client's real parser, and a real `labcap run`."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from labcap.collectors.dcgm import DcgmCollector, DcgmSettings, check_metrics_url
from labcap.errors import LabcapError
from tests.support.cli import labcap
from tests.support.servers import loopback_server

FIXTURE = Path(__file__).parent / "fixtures" / "dcgm_exporter_mig.txt"
LOCUSTFILE = Path(__file__).parents[1] / "support" / "locustfile_target.py"
MIB = 2**20


@pytest.fixture(scope="module")
def exporter():
    with loopback_server("dcgm_exporter.py", str(FIXTURE)) as url:
        yield url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scrapes_gpus_mig_instances_and_pods(exporter):
    c = DcgmCollector(DcgmSettings(url=f"{exporter}/metrics", interval_s=0.2))
    c.start(None)
    assert c.status().available, c.status().reason
    time.sleep(0.9)
    c.stop()
    assert not any(t.name == "labcap-dcgm" for t in threading.enumerate())
    df = c.tables()["gpu_samples"]
    assert len(df) >= 5 * 3 and set(df["source"]) == {"dcgm"}
    last = df[df["t_unix"] == df["t_unix"].max()].set_index("mig_instance", drop=False)
    assert len(last) == 5  # GPU 0's four MIG instances, whole GPU 1
    whole = df[df["mig_instance"].isna()].iloc[-1]
    assert whole["gpu_index"] == 1 and whole["util_gpu_pct"] == 97.0
    assert whole["engine_active_pct"] == pytest.approx(96.3211, abs=1e-3)
    assert whole["mem_used_bytes"] == 38246 * MIB
    assert whole["mem_total_bytes"] == (38246 + 2114 + 594) * MIB  # used + free + reserved
    assert (whole["pod"], whole["namespace"], whole["container"]) == (
        "mlflow-train-6f9c7d8b5-x2kqp",
        "ml",
        "trainer",
    )
    assert whole["power_w"] == pytest.approx(287.512) and whole["sm_clock_mhz"] == 1395
    mig = df[df["mig_instance"] == 7].iloc[-1]
    assert mig["gpu_index"] == 0 and mig["mig_profile"] == "1g.5gb" and mig["pod"] == "jupyter-bob"
    # utilisation is not defined under MIG: null, with the MIG-safe activity instead
    assert pd.isna(mig["util_gpu_pct"]) and "not defined under MIG" in mig["util_note"]
    assert mig["engine_active_pct"] == pytest.approx(8.7)
    assert mig["mem_used_bytes"] == 3102 * MIB and mig["mem_total_bytes"] == (3102 + 1771) * MIB
    free_slot = df[df["mig_instance"] == 9].iloc[-1]
    assert pd.isna(free_slot["pod"]) and free_slot["mem_used_bytes"] == 0
    assert c.status().warnings == ()


def test_unreachable_exporter_is_unavailable_and_starts_no_thread():
    url = f"http://127.0.0.1:{_closed_port()}/metrics"
    c = DcgmCollector(DcgmSettings(url=url, interval_s=0.2, timeout_s=1))
    c.start(None)
    st = c.status()
    assert not st.available and "did not answer" in st.reason and "ConnectionError" in st.reason
    assert not any(t.name == "labcap-dcgm" for t in threading.enumerate())
    c.stop()
    assert not len(c.tables()["gpu_samples"])


def test_an_endpoint_that_is_not_an_exporter_is_unavailable():
    with loopback_server("target_server.py") as url:
        c = DcgmCollector(DcgmSettings(url=f"{url}/fast", timeout_s=2))
        c.start(None)
        c.stop()
    st = c.status()
    assert not st.available and "Prometheus text" in st.reason


def test_an_exporter_lost_mid_run_is_a_warning():
    with loopback_server("dcgm_exporter.py", str(FIXTURE)) as url:
        c = DcgmCollector(DcgmSettings(url=f"{url}/metrics", interval_s=0.2, timeout_s=1))
        c.start(None)
    time.sleep(0.7)  # the server is gone: these scrapes fail
    c.stop()
    st = c.status()
    assert st.available and st.warnings and "scrapes failed" in st.warnings[0]


@pytest.mark.parametrize("url", ["127.0.0.1:9400", "ftp://x/metrics", "http:///metrics", ""])
def test_bad_metrics_url_is_refused(url):
    with pytest.raises(LabcapError, match="not an http"):
        check_metrics_url(url)


def test_metrics_path_is_added_when_missing():
    assert check_metrics_url("http://127.0.0.1:9400") == "http://127.0.0.1:9400/metrics"
    assert check_metrics_url("http://h:9400/custom") == "http://h:9400/custom"


def test_bad_metrics_url_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    r = labcap(
        "run", "--host", "http://127.0.0.1:1", "--gpu-metrics-url", "nope", "--out", str(out)
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("labcap: error: --gpu-metrics-url")
    assert not out.exists()


def test_labcap_run_records_gpu_samples_and_plan_and_report_use_them(tmp_path, exporter):
    if importlib.util.find_spec("locust") is None:  # never imported here: it patches the process
        pytest.skip("locust is not installed (the GPU machine runs only the gpu tests)")
    out = tmp_path / "run"
    with loopback_server("target_server.py") as target:
        r = labcap(
            "run",
            "--host",
            target,
            "--scenario",
            str(LOCUSTFILE),
            "--users",
            "1,2",
            "--step-duration",
            "3s",
            "--settle",
            "1s",
            "--window",
            "1s",
            "--gpu",
            "nvml",  # no GPU here: recorded as unavailable, and the run goes on
            "--gpu-metrics-url",
            exporter,
            "--no-calibrate",
            "--out",
            str(out),
            "--json",
        )
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete", manifest["status_reasons"]
    collectors = {c["name"]: c for c in manifest["collectors"]}
    assert collectors["gpu-dcgm"]["available"] is True
    from tests.gpu.conftest import nvml_reason

    if nvml_reason():
        assert collectors["gpu"]["available"] is False and collectors["gpu"]["reason"]
        assert "collector gpu: unavailable" in r.stderr
    samples = pd.read_parquet(out / "gpu_samples.parquet")
    assert {"t_s", "step_index", "source"} <= set(samples.columns)
    assert set(samples["step_index"]) >= {0, 1} and set(samples["source"]) >= {"dcgm"}
    assert set(samples["mig_profile"].dropna()) == {"3g.20gb", "1g.5gb"}

    p = labcap("plan", str(out), "--expected-users", "2", "--json")
    assert p.returncode == 0, p.stderr
    gpu = json.loads(p.stdout)["gpu"]
    assert gpu["available"] and gpu["gpus"] == 2 and gpu["mig_instances"] == 4
    devices = {s["device"] for s in gpu["steps"] if s["source"] == "dcgm"}
    assert "GPU 1" in devices and "GPU 0 / MIG 7 (1g.5gb)" in devices
    row = next(s for s in gpu["steps"] if s["device"] == "GPU 0 / MIG 1 (3g.20gb)")
    assert row["metric"] == "engine_active_pct" and row["mean_util_pct"] == pytest.approx(41.2)
    assert row["mem_headroom_bytes"] == 5933 * MIB and row["sharing_max"] == 1
    # four pods on two GPUs, 29 % busy on average: the sharing rules have their inputs
    m = gpu["measurements"]
    assert m["gpu_count"] == 2 and m["gpu_users_per_gpu"] == 2.0
    assert m["gpu_util_pct"] == pytest.approx((97 + 41.2 + 8.7 + 0 + 0) / 5, abs=0.01)
    rec = json.loads(p.stdout)["recommendation"]
    fired = {x["rule"] for x in rec["reasons"]}
    assert {"gpu-sharing-needed", "gpu-light-users-share"} <= fired
    assert rec["measurements"]["gpu_users_per_gpu"] == 2.0
    text = labcap("plan", str(out))
    assert text.returncode == 0 and "gpu: 2 GPUs, 4 MIG instances (dcgm);" in text.stdout

    rep = labcap("report", str(out), "-o", str(tmp_path / "r.html"))
    assert rep.returncode == 0, rep.stderr
    html = (tmp_path / "r.html").read_text()
    assert "GPU evidence per step" in html and "GPU activity per device / MIG instance" in html
    assert "GPU 0 / MIG 7 (1g.5gb)" in html
