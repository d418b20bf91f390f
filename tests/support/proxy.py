"""A tiny HTTP forward proxy on 127.0.0.1 for the proxy tests: absolute-form requests are
forwarded, CONNECT opens a tunnel; every request line it sees is recorded. Loopback targets
only (anything else is refused), so a test can never send traffic off the machine."""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class ProxyLog:
    url: str
    lines: list[str] = field(default_factory=list)

    def saw(self, fragment: str) -> bool:
        return any(fragment in line for line in list(self.lines))


def _loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


def _pipe(a: socket.socket, b: socket.socket, limit_s: float = 300.0) -> None:
    socks = [a, b]
    while True:
        ready, _, _ = select.select(socks, [], [], limit_s)
        if not ready:
            return
        for s in ready:
            try:
                data = s.recv(65536)
            except OSError:  # a side reset the connection: the exchange is over
                return
            if not data:
                return
            (b if s is a else a).sendall(data)


def _serve(conn: socket.socket, log: ProxyLog) -> None:
    with conn:
        buf = b""
        while True:  # one client connection may carry many requests (keep-alive)
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            log.lines.append(lines[0])
            method, target, version = lines[0].split(" ", 2)
            if method == "CONNECT":
                _tunnel(conn, target)
                return
            headers = [h for h in lines[1:] if not h.lower().startswith(("connection", "proxy-"))]
            length = next(
                (
                    int(h.split(":", 1)[1])
                    for h in headers
                    if h.lower().startswith("content-length")
                ),
                0,
            )
            while len(buf) < length:
                buf += conn.recv(65536)
            body, buf = buf[:length], buf[length:]
            parts = urlsplit(target)
            if not parts.hostname or not _loopback(parts.hostname):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                continue
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            request = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close"])
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=60) as up:
                up.sendall(request.encode("latin-1") + b"\r\n\r\n" + body)
                conn.sendall(_response(up, method))


def _response(up: socket.socket, method: str) -> bytes:
    """One whole response off ``up``, as framed (Content-Length, chunked, or to close): a
    server need not close after it even when asked to."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = up.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    fields = {
        k.strip().lower(): v.strip()
        for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n")[1:])
    }
    status = int(head.split(b" ", 2)[1])
    if method == "HEAD" or status in (204, 304) or status < 200:
        return head + b"\r\n\r\n"
    if b"content-length" in fields:
        length = int(fields[b"content-length"])
        while len(rest) < length:
            chunk = up.recv(65536)
            if not chunk:
                break
            rest += chunk
        return head + b"\r\n\r\n" + rest[:length]
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        while not rest.endswith(b"0\r\n\r\n"):  # the last chunk (no trailers from ours)
            chunk = up.recv(65536)
            if not chunk:
                break
            rest += chunk
        return head + b"\r\n\r\n" + rest
    while chunk := up.recv(65536):
        rest += chunk
    return head + b"\r\n\r\n" + rest


def _tunnel(conn: socket.socket, target: str) -> None:
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not _loopback(host):
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        return
    with socket.create_connection((host, int(port)), timeout=10) as up:
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _pipe(conn, up)


@contextlib.contextmanager
def loopback_proxy() -> Iterator[ProxyLog]:
    """A forward proxy on a free 127.0.0.1 port; ``ProxyLog.lines`` holds every request line
    (a CONNECT tunnel's contents are not seen)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    log = ProxyLog(f"http://127.0.0.1:{server.getsockname()[1]}")
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn, log), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield log
    finally:
        stop.set()
        t.join(timeout=5)
        server.close()
