"""A tiny loopback HTTP target for integration tests (run as a subprocess).

/fast answers at once. /knee answers at once while fewer than 3 requests are
in flight and takes 300 ms beyond that: a deployment with a known capacity.
/slow?ms=N takes N milliseconds (at most 10 s): a controlled slowdown for the gate.
/count answers how many other requests it has answered so far (the target's own count,
against which a run's request count is checked).
/status?code=N answers with HTTP status N (e.g. 503: a target failing every request).
Prints its port on stdout, serves until killed.
"""

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_lock = threading.Lock()
_in_flight = 0
_served = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        global _in_flight, _served
        if self.path.startswith("/count"):
            with _lock:
                body = f"{_served}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with _lock:
            _in_flight += 1
            busy = _in_flight >= 3
        try:
            if self.path.startswith("/knee") and busy:
                time.sleep(0.3)
            elif self.path.startswith("/slow"):
                time.sleep(_slow_ms(self.path) / 1000)
            body = b"ok\n"
            self.send_response(_status(self.path))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with _lock:
                _in_flight -= 1
                _served += 1

    def log_message(self, *args):
        pass


def _status(path):
    if not path.startswith("/status"):
        return 200
    try:
        code = int(parse_qs(urlsplit(path).query).get("code", ["200"])[0])
    except ValueError:
        return 200
    return code if 200 <= code <= 599 else 200


def _slow_ms(path):
    try:
        ms = float(parse_qs(urlsplit(path).query).get("ms", ["0"])[0])
    except ValueError:
        return 0.0
    return min(max(ms, 0.0), 10_000.0) if ms == ms else 0.0


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
    sys.exit(0)
