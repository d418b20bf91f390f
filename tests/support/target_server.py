"""A tiny loopback HTTP target for integration tests (run as a subprocess).

/fast answers at once. /knee answers at once while fewer than 3 requests are
in flight and takes 300 ms beyond that: a deployment with a known capacity.
Prints its port on stdout, serves until killed.
"""

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_lock = threading.Lock()
_in_flight = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        global _in_flight
        with _lock:
            _in_flight += 1
            busy = _in_flight >= 3
        try:
            if self.path.startswith("/knee") and busy:
                time.sleep(0.3)
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with _lock:
                _in_flight -= 1

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
    sys.exit(0)
