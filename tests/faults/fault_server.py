"""A loopback HTTP target whose behaviour a fault test changes while a run is on.

GET /control?delay_ms=N sets the delay of every later answer (0: at once).
Any other GET answers "ok" after the current delay. Prints its port on stdout.
Usage: fault_server.py [PORT] (0 or absent: a free port; a fixed one to restart on it).
"""

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_state = {"delay_ms": 0.0}
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path == "/control":
            ms = float(parse_qs(parts.query).get("delay_ms", ["0"])[0])
            with _lock:
                _state["delay_ms"] = min(max(ms, 0.0), 30_000.0)
        else:
            with _lock:
                delay = _state["delay_ms"]
            time.sleep(delay / 1000)
        body = b"ok\n"
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (timed out) first

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = Server(("127.0.0.1", port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
