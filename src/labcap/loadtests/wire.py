"""labcap's own HTTP/1.1 client: a response's time ends when the kernel received it.

Python's HTTP clients under gevent (python-requests in ``HttpUser``, geventhttpclient
in ``FastHttpUser``) time a request from before the send to after the greenlet has
woken and parsed the response. The generator's own delay lands in every figure: on
the 2-core VM labcap is built on, geventhttpclient alone adds ~0.4 ms at p50 and
~1.2 ms at p99 over wrk at 200 req/s (bench/loadgen_compare.py). This client takes
the response's arrival from the socket (``SO_TIMESTAMPNS``: the instant the kernel
received the bytes that completed it, read with ``recvmsg``), so a greenlet woken
late, or another user's parsing in the meantime, does not lengthen the measurement.
Where the kernel gives no timestamp (TLS, a kernel without the option), the time is
taken on the last read in user space, and the response's ``clock`` says which.

Deliberately small: keep-alive HTTP/1.1 with Content-Length, chunked or read-to-close
bodies, no redirects, no cookies, no compression. Through an HTTP proxy when one is given
(``labcap.clients.http.proxy_for``: HTTP(S)_PROXY and NO_PROXY): http requests in absolute
form, https through a CONNECT tunnel. No Locust import here (the Locust
user is ``labcap.loadtests.users.WireHttpUser``); under gevent the socket calls
block only the calling greenlet.
"""

from __future__ import annotations

import json as jsonlib
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from labcap.clients.http import Proxy

# Linux's value (x86-64 and arm64); Python's socket module does not export it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_ANC_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_BYTES = 65536
_MAX_HEAD_BYTES = 65536


class WireError(Exception):
    """The server's answer is not HTTP/1.x we can read, or it closed mid-response."""


class CheckFailed(Exception):
    """A response the caller's ``check`` rejected (wrong body, missing field)."""


class HTTPStatusError(Exception):
    """A response with status 400 or above (reported to Locust as the request's failure)."""

    def __init__(self, status: int, reason: str, url: str) -> None:
        super().__init__(f"HTTP {status} {reason} for {url}")
        self.status = status


@dataclass
class WireResponse:
    """One exchange. ``status`` is 0 when no response came (``error`` says why)."""

    status: int
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    content: bytes = b""
    elapsed_us: float = 0.0
    clock: str = "user"  # "kernel": arrival from SO_TIMESTAMPNS; "user": on the last read
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and 0 < self.status < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class _Reader:
    """Buffered reads off one socket, remembering when the kernel received the last bytes."""

    def __init__(self, sock: socket.socket, kernel: bool) -> None:
        self.sock, self.kernel = sock, kernel
        self.buf = bytearray()
        self.arrived_ns: int | None = None  # CLOCK_REALTIME, like the kernel's stamps
        self.got_bytes = False

    def fill(self) -> None:
        if self.kernel:
            data, anc, _flags, _addr = self.sock.recvmsg(_READ_BYTES, _ANC_BYTES)
            stamp = _stamp_ns(anc)
        else:
            data = self.sock.recv(_READ_BYTES)
            stamp = time.time_ns()
        if data:  # the end of a read-to-close body has no bytes, and no stamp of its own
            self.arrived_ns = stamp
        else:
            what = " mid-response" if self.got_bytes else ""
            raise WireError(f"the server closed the connection{what}")
        self.got_bytes = True
        self.buf += data

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > _MAX_HEAD_BYTES:
                raise WireError("response line over 64 KiB")
            self.fill()
        out = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return out

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def to_close(self) -> bytes:
        try:
            while True:
                self.fill()
        except WireError:
            pass
        out, self.buf = bytes(self.buf), bytearray()
        return out


def _stamp_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec * 1_000_000_000 + nsec
    return None


class Connection:
    """One keep-alive connection to ``host:port`` (TLS when ``tls``)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: bool = False,
        timeout_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        self.host, self.port, self.tls, self.timeout_s = host, port, tls, timeout_s
        self.ssl_context = ssl_context
        self.proxy = proxy
        self.sock: socket.socket | None = None
        self.kernel_clock = False
        self.reader: _Reader | None = None

    def open(self) -> None:
        addr = (self.proxy.host, self.proxy.port) if self.proxy else (self.host, self.port)
        sock = socket.create_connection(addr, timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.proxy is not None and self.tls:
            try:
                self._tunnel(sock)
            except BaseException:
                sock.close()
                raise
        kernel = False
        if self.tls:  # recvmsg does not exist on TLS sockets: user-space clock
            context = self.ssl_context or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=self.host)
        elif sys.platform.startswith("linux"):
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                kernel = True
            except OSError:
                pass
        self.sock, self.kernel_clock = sock, kernel
        self.reader = _Reader(sock, kernel)

    def _tunnel(self, sock: socket.socket) -> None:
        """CONNECT through the proxy to the target; TLS then runs inside the tunnel."""
        assert self.proxy is not None
        authority = f"{self.host}:{self.port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if self.proxy.auth_header:
            head += f"Proxy-Authorization: {self.proxy.auth_header}\r\n"
        sock.sendall((head + "\r\n").encode("latin-1"))
        reader = _Reader(sock, kernel=False)
        status = reader.line()
        while reader.line():  # the proxy's headers, up to the blank line
            pass
        parts = status.split(b" ", 2)
        if len(parts) < 2 or parts[1] != b"200":
            raise WireError(f"the proxy refused CONNECT {authority}: {status[:80]!r}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None

    def exchange(self, method: str, head: bytes, body: bytes) -> WireResponse:
        """Send one request, read its response; a keep-alive connection the server had
        closed meanwhile (nothing came back on it) is reopened and the request sent again."""
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self.open()
            assert self.reader is not None
            reader = self.reader
            try:
                return self._exchange_once(method, head + body)
            except (WireError, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt or not reused or reader.got_bytes:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def _exchange_once(self, method: str, request: bytes) -> WireResponse:
        assert self.sock is not None and self.reader is not None
        reader = self.reader
        reader.buf.clear()
        reader.got_bytes, reader.arrived_ns = False, None
        sent_ns = time.time_ns()
        sent_perf = time.perf_counter_ns()
        self.sock.sendall(request)
        status_line = reader.line()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise WireError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        status, reason = int(parts[1]), parts[2].decode("latin-1") if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        while line := reader.line():
            name, sep, value = line.partition(b":")
            if not sep:
                raise WireError(f"malformed header line: {line[:80]!r}")
            key = name.strip().lower().decode("latin-1")
            value_s = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {value_s}" if key in headers else value_s
        content = self._body(method, status, headers)
        elapsed_ns, clock = time.perf_counter_ns() - sent_perf, "user"
        # the kernel's stamp is CLOCK_REALTIME: trusted only when it lies inside the exchange
        arrived = reader.arrived_ns
        if self.kernel_clock and arrived is not None and 0 <= arrived - sent_ns <= elapsed_ns:
            elapsed_ns, clock = arrived - sent_ns, "kernel"
        connection = headers.get("connection", "").lower()
        if connection == "close" or (parts[0] == b"HTTP/1.0" and connection != "keep-alive"):
            self.close()
        return WireResponse(status, reason, headers, content, elapsed_ns / 1000, clock)

    def _body(self, method: str, status: int, headers: dict[str, str]) -> bytes:
        reader = self.reader
        assert reader is not None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size_line = reader.line().split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise WireError(f"malformed chunk size: {size_line[:40]!r}") from None
                if size == 0:
                    while reader.line():  # trailers, up to the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(reader.exactly(size))
                reader.exactly(2)  # the chunk's CRLF
        if "content-length" in headers:
            try:
                length = int(headers["content-length"].split(",")[0])
            except ValueError:
                raise WireError("malformed Content-Length") from None
            return reader.exactly(length)
        body = reader.to_close()
        self.close()
        return body


class WireSession:
    """Requests to one base URL over one keep-alive connection, each reported to
    ``request_event`` (Locust's ``events.request``) with its time in ms, µs-exact."""

    def __init__(
        self,
        base_url: str,
        request_event: Any = None,
        user: Any = None,
        timeout_s: float = 60.0,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> None:
        """``ssl_context``: for https, e.g. one trusting the lab's own CA
        (``ssl.create_default_context(cafile=...)``); the system's trust store otherwise.
        ``proxy``: an HTTP proxy to go through (``clients.http.proxy_for(base_url)``)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        self.conn = Connection(parts.hostname, port, tls, timeout_s, ssl_context, proxy)
        default_port = port == (443 if tls else 80)
        host = parts.hostname if default_port else f"{parts.hostname}:{port}"
        self.headers = {"Host": host, "User-Agent": "labcap-wire", **(headers or {})}
        # plain http through a proxy: absolute-form request targets (RFC 9112 3.2.2)
        self.absolute = proxy is not None and not tls
        if self.absolute and proxy is not None and proxy.auth_header:
            self.headers["Proxy-Authorization"] = proxy.auth_header
        self.request_event, self.user = request_event, user

    def request(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        check: Callable[[WireResponse], str | None] | None = None,
    ) -> WireResponse:
        """Never raises for the server's or the network's failures: they are reported
        to the request event and returned in ``WireResponse.error``. ``params`` go into the
        query string; ``check(response)`` (called on a status below 400) returns a reason
        to report the request as failed, or None (FastHttpUser's ``catch_response``)."""
        all_headers = {**self.headers, **(headers or {})}
        body = b""
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else bytes(data)
        if body or method in ("POST", "PUT", "PATCH"):
            all_headers["Content-Length"] = str(len(body))
        target = self.prefix + (path if path.startswith("/") else "/" + path)
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params, doseq=True)
        line_target = self.origin + target if self.absolute else target
        head = f"{method} {line_target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()
        )
        start_time = time.time()
        t0 = time.perf_counter_ns()
        try:
            response = self.conn.exchange(method, (head + "\r\n").encode("latin-1"), body)
        except Exception as e:  # refused, reset, timed out, not HTTP: the request failed
            response = WireResponse(0, elapsed_us=(time.perf_counter_ns() - t0) / 1000, error=e)
        if response.error is None and response.status >= 400:
            # the path without its query: a query string may carry a token
            response.error = HTTPStatusError(response.status, response.reason, target.split("?")[0])
        if response.error is None and check is not None:
            reason = check(response)
            if reason:
                response.error = CheckFailed(reason)
        if self.request_event is not None:
            context = self.user.context() if self.user is not None else {}
            self.request_event.fire(
                request_type=method,
                name=name or path,
                response_time=response.elapsed_us / 1000,
                response_length=len(response.content),
                response=response,
                context=context,
                exception=response.error,
                start_time=start_time,
                url=self.origin + target,
            )
        return response

    def get(self, path: str, **kw: Any) -> WireResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> WireResponse:
        return self.request("POST", path, **kw)

    def close(self) -> None:
        self.conn.close()
