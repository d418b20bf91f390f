"""A loopback stand-in for dcgm-exporter: serves a recorded /metrics text (a subprocess).

Usage: dcgm_exporter.py FIXTURE. GET /metrics answers the fixture's Prometheus
text as dcgm-exporter does (text/plain; version=0.0.4); any other path is 404.
Prints its port on stdout, serves on 127.0.0.1 until killed.
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BODY = Path(sys.argv[1]).read_bytes()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
