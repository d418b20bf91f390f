"""A loopback HTTP target with a known service time (run as a subprocess).

Every GET sleeps a time drawn from a lognormal distribution whose median is
``--service-ms`` (default 20) and whose shape is ``--sigma`` (default 0.25; its p95 is
then about 1.5 times the median). ``--add-pct P`` is the candidate's configuration
change: every service time is P % longer (the whole distribution, p95 included, moves
by P %). Prints its port on stdout, serves until killed.
"""

import argparse
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--add-pct", type=float, default=0.0)
    args = parser.parse_args()
    scale = args.service_ms * (1 + args.add_pct / 100) / 1000

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            time.sleep(scale * random.lognormvariate(0.0, args.sigma))
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
    sys.exit(0)
