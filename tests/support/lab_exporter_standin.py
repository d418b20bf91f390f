"""STAND-IN, not cAdvisor or dcgm-exporter: a loopback exporter serving cAdvisor- and
dcgm-exporter-shaped metrics, because neither can run here (no cAdvisor image, no GPU).

Usage: lab_exporter_standin.py. GET /metrics answers Prometheus text whose counters grow
with wall time, so Prometheus's rate() sees a steady state:

- one Docker container ``jupyter-alice`` (compose service ``jupyter``) using 0.5 cores,
  its CFS quota throttling 6 of every 10 periods (60 %), 512 MiB of a 1 GiB limit;
- the cgroup hierarchy's aggregate ``/`` (image="") that readers must leave out;
- one GPU at 87 % utilisation, 12,000 MiB of its framebuffer used, 28,000 MiB free.

Prints its port on stdout, serves on 127.0.0.1 until killed.
"""

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

T0 = time.time()
CID = "ab" * 32
C = (
    f'id="/system.slice/docker-{CID}.scope",name="jupyter-alice",'
    'image="quay.io/jupyter/base-notebook:latest",'
    'container_label_com_docker_compose_service="jupyter"'
)
ROOT = 'id="/",image="",name=""'
GPU = 'gpu="0",UUID="GPU-5tand1n-0000",modelName="stand-in GPU (not a real device)"'


def body() -> bytes:
    t = time.time() - T0
    lines = [
        "# TYPE container_cpu_usage_seconds_total counter",
        f"container_cpu_usage_seconds_total{{{C}}} {100 + 0.5 * t:.3f}",
        f"container_cpu_usage_seconds_total{{{ROOT}}} {1000 + 1.5 * t:.3f}",
        "# TYPE container_cpu_cfs_periods_total counter",
        f"container_cpu_cfs_periods_total{{{C}}} {int(1000 + 10 * t)}",
        "# TYPE container_cpu_cfs_throttled_periods_total counter",
        f"container_cpu_cfs_throttled_periods_total{{{C}}} {int(600 + 6 * t)}",
        "# TYPE container_memory_working_set_bytes gauge",
        f"container_memory_working_set_bytes{{{C}}} {512 * 2**20}",
        f"container_memory_working_set_bytes{{{ROOT}}} {6 * 2**30}",
        "# TYPE container_spec_memory_limit_bytes gauge",
        f"container_spec_memory_limit_bytes{{{C}}} {2**30}",
        "# TYPE container_oom_events_total counter",
        f"container_oom_events_total{{{C}}} 0",
        "# TYPE machine_memory_bytes gauge",
        f"machine_memory_bytes {8 * 2**30}",
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
        f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}} 87",
        "# TYPE DCGM_FI_DEV_FB_USED gauge",
        f"DCGM_FI_DEV_FB_USED{{{GPU}}} 12000",
        "# TYPE DCGM_FI_DEV_FB_FREE gauge",
        f"DCGM_FI_DEV_FB_FREE{{{GPU}}} 28000",
    ]
    return ("\n".join(lines) + "\n").encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        data = body()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
