"""Pieces the load-generator benches share: an nginx target on loopback, child CPU time."""

from __future__ import annotations

import contextlib
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

NGINX_CONF = """
daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
worker_rlimit_nofile 65536;
events {{ worker_connections 30000; }}
http {{
  access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def nginx_target() -> Iterator[str]:
    """nginx (one worker) answering 200 on 127.0.0.1; labcap's asyncio target without it."""
    if not shutil.which("nginx"):
        print("# nginx not installed (apt-get install nginx-light): labcap's asyncio target")
        from labcap.measure.calibrate import trivial_target

        with trivial_target() as url:
            yield url
        return
    d = Path(tempfile.mkdtemp(prefix="labcap-bench-nginx-"))
    port = free_port()
    (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, port=port))
    proc = subprocess.Popen(["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)])
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_timed(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run to the end; (result, wall seconds, CPU seconds of the child and its children)."""
    c0, t0 = children_cpu_s(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return r, time.perf_counter() - t0, children_cpu_s() - c0
