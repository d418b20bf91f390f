"""An HTTP/1.1 loopback server with the framings labcap's wire client must read.

/len: Content-Length body. /chunked: three chunks and a trailer. /close: no length,
body until the server closes. /echo (POST): the body and its Content-Type back as JSON.
/status/N: status N. /once: answers, then closes the keep-alive connection without
saying so. /garbage: not HTTP. /slow?ms=N: waits N ms. With CERT KEY arguments, https.
Prints its port, serves until killed.
"""

import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/len":
            self._send(200, b"hello")
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Done")
            self.end_headers()
            for part in (b"chunk-one;", b"two;", b"three" * 3000):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Done: yes\r\n\r\n")
        elif path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until-close")
            self.close_connection = True
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"no")
        elif path == "/once":
            self._send(200, b"once")
            self.close_connection = True  # and no Connection: close header
        elif path == "/garbage":
            self.wfile.write(b"SSH-2.0-not-http\r\n\r\n")
            self.close_connection = True
        elif path == "/slow":
            time.sleep(float(parse_qs(urlsplit(self.path).query)["ms"][0]) / 1000)
            self._send(200, b"slow")
        else:
            self._send(404, b"unknown")

    def do_HEAD(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        echo = {"body": body.decode(), "content_type": self.headers.get("Content-Type")}
        self._send(201, json.dumps(echo).encode(), [("Content-Type", "application/json")])

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 3:  # CERT KEY: serve https
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    sys.exit(0)
