"""A loopback HTTP target whose capacity is known from queueing theory (run as a subprocess).

``python queue_server.py K SERVICE_MS`` serves every GET with K worker threads and a
FIFO queue in front of them: a request waits for a free worker, which holds it for
exactly SERVICE_MS milliseconds, then the connection's own thread writes the answer.
That is a k-server station with deterministic service time S. Driven by N users that
each think Z seconds between requests (a closed network), throughput is N/(S+Z) until
the workers are busy all the time, and the saturation point is

    N* = k * (S + Z) / S

Beyond N* throughput stays at k/S and the response time grows by S/k per added user:
R(N) = N*S/k - Z. Listens on 127.0.0.1 only; prints its port, serves until killed.
GET /count answers at once (no worker taken) with how many other requests were answered.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def saturation_users(workers: int, service_s: float, think_s: float) -> float:
    """N* = k(S+Z)/S: where the closed network's two throughput bounds meet."""
    return workers * (service_s + think_s) / service_s


def saturated_response_s(users: int, workers: int, service_s: float, think_s: float) -> float:
    """Response time beyond N*: every worker busy, so N/(R+Z) = k/S."""
    return max(service_s, users * service_s / workers - think_s)


class Station:
    """k workers pulling jobs from one FIFO queue; each job occupies a worker for S."""

    def __init__(self, workers: int, service_s: float) -> None:
        self.service_s = service_s
        self.served = 0
        self.lock = threading.Lock()
        self.jobs: queue.Queue[threading.Event] = queue.Queue()
        for i in range(workers):
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True).start()

    def _work(self) -> None:
        while True:
            done = self.jobs.get()
            time.sleep(self.service_s)  # the worker is taken for S, whatever the request
            done.set()

    def serve(self) -> None:
        done = threading.Event()
        self.jobs.put(done)
        done.wait()
        with self.lock:
            self.served += 1


def make_handler(station: Station) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per user, as a browser
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK stall

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/count"):
                body = f"{station.served}\n".encode()
            else:
                station.serve()
                body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str]) -> int:
    workers = int(argv[0]) if argv else 4
    service_ms = float(argv[1]) if len(argv) > 1 else 150.0
    station = Station(workers, service_ms / 1000)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(station))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
