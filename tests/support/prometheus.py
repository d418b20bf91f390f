"""A real Prometheus server on loopback, scraping a real node-exporter (and the stand-in
cAdvisor/dcgm exporter, tests/support/lab_exporter_standin.py) every second.

Debian's ``prometheus`` and ``prometheus-node-exporter`` (scripts/bootstrap.sh installs
them when root). Every port is 127.0.0.1 and picked at random; the TSDB lives in a
temporary directory. ``prometheus_stack()`` yields once every target is up.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

SUPPORT = Path(__file__).parent
BINARIES = ("prometheus", "prometheus-node-exporter")


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PrometheusStack:
    url: str  # Prometheus's base URL
    node_exporter: str  # host:port
    standin: str  # host:port


def _wait_up(url: str, jobs: int, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    last = ""
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"{url}/api/v1/query", params={"query": "up == 1"}, timeout=2)
            up = r.json()["data"]["result"]
            if len(up) >= jobs:
                return
            last = f"{len(up)} of {jobs} targets up"
        except (requests.RequestException, ValueError, KeyError) as e:
            last = str(e)
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus at {url} not ready: {last}")


@contextlib.contextmanager
def prometheus_stack() -> Iterator[PrometheusStack]:
    work = Path(tempfile.mkdtemp(prefix="labcap-prom-"))
    procs: list[subprocess.Popen] = []
    try:
        node = f"127.0.0.1:{free_port()}"
        procs.append(
            subprocess.Popen(
                [
                    "prometheus-node-exporter",
                    f"--web.listen-address={node}",
                    "--collector.disable-defaults",
                    "--collector.cpu",
                    "--collector.meminfo",
                    "--collector.loadavg",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(work / "node-exporter.log").open("w"),
            )
        )
        standin = subprocess.Popen(
            [sys.executable, str(SUPPORT / "lab_exporter_standin.py")],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(standin)
        standin_at = f"127.0.0.1:{int(standin.stdout.readline())}"
        prom = f"127.0.0.1:{free_port()}"
        (work / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: node\n    static_configs: [{{targets: ['{node}']}}]\n"
            f"  - job_name: lab-standin\n    static_configs: [{{targets: ['{standin_at}']}}]\n"
        )
        procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address={prom}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(work / "prometheus.log").open("w"),
            )
        )
        url = f"http://{prom}"
        _wait_up(url, jobs=2)
        yield PrometheusStack(url=url, node_exporter=node, standin=standin_at)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)
