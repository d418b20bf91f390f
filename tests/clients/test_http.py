"""Proxies and CA bundles from the environment, as labcap's own HTTP client follows them:
through a real forward proxy written here (127.0.0.1 only), to real loopback servers, over
plain HTTP (absolute-form requests) and HTTPS (a CONNECT tunnel, a CA of the test's own)."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from labcap.clients.http import ca_bundle, proxy_for, ssl_context
from labcap.loadtests.wire import WireSession
from tests.support.proxy import loopback_proxy


def test_proxy_for_follows_the_environment_and_no_proxy() -> None:
    env = {"HTTP_PROXY": "http://127.0.0.1:3128", "https_proxy": "127.0.0.2:8080"}
    p = proxy_for("http://127.0.0.5:80/x", env)
    assert p is not None and (p.host, p.port) == ("127.0.0.1", 3128)
    p = proxy_for("https://hub.example.org/", env)
    assert p is not None and (p.host, p.port) == ("127.0.0.2", 8080)
    for no_proxy in ("*", "127.0.0.5", "127.0.0.0/8", "127.0.0.5:80", "a.test, 127.0.0.5"):
        assert proxy_for("http://127.0.0.5:80/", {**env, "NO_PROXY": no_proxy}) is None
    for no_proxy in ("example.org", ".example.org"):
        assert proxy_for("https://hub.example.org/", {**env, "no_proxy": no_proxy}) is None
    assert proxy_for("https://example.com/", {**env, "NO_PROXY": "example.org"}) is not None
    assert proxy_for("http://127.0.0.5:81/", {**env, "NO_PROXY": "127.0.0.5:80"}) is not None
    assert proxy_for("http://127.0.0.5/", {}) is None
    # the lower-case variable wins, as in curl and requests
    both = {"HTTP_PROXY": "http://127.0.0.1:1", "http_proxy": "http://127.0.0.1:2"}
    assert proxy_for("http://127.0.0.9/", both).port == 2
    secret = proxy_for("http://127.0.0.9/", {"HTTP_PROXY": "http://u:pw@127.0.0.1:3"})
    assert secret.auth_header == "Basic dTpwdw==" and "pw" not in repr(secret)


def test_ca_bundle_order() -> None:
    assert ca_bundle({"SSL_CERT_FILE": "b", "REQUESTS_CA_BUNDLE": "a"}) == "a"
    assert ca_bundle({"SSL_CERT_FILE": "b"}) == "b"
    assert ca_bundle({}) is None


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(context: ssl.SSLContext | None = None) -> tuple[http.server.HTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    scheme = "http"
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    yield cert, key


def test_wire_client_goes_through_the_proxy_for_http() -> None:
    server, url = _serve()
    try:
        with loopback_proxy() as log:
            session = WireSession(url, proxy=proxy_for(url, {"HTTP_PROXY": log.url}))
            for i in range(3):  # keep-alive to the proxy: each request still goes through it
                r = session.get(f"/n{i}")
                assert r.ok and r.text == f"hello /n{i}", r.error
            session.close()
        assert [ln for ln in log.lines if ln.startswith("GET ")] == [
            f"GET {url}/n{i} HTTP/1.1" for i in range(3)
        ]
    finally:
        server.shutdown()


def test_wire_client_tunnels_https_and_trusts_the_ca_bundle(self_signed) -> None:
    cert, key = self_signed
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server, url = _serve(server_ctx)
    try:
        with loopback_proxy() as log:
            proxy = proxy_for(url, {"HTTPS_PROXY": log.url})
            trusted = ssl_context({"REQUESTS_CA_BUNDLE": str(cert)})
            session = WireSession(url, proxy=proxy, ssl_context=trusted)
            r = session.get("/secure")
            session.close()
            assert r.ok and r.text == "hello /secure", r.error
            assert log.saw(f"CONNECT 127.0.0.1:{server.server_address[1]} HTTP/1.1")
            # without the bundle the lab's certificate is not trusted
            untrusted = WireSession(url, proxy=proxy, ssl_context=ssl_context({}))
            r = untrusted.get("/secure")
            untrusted.close()
            assert r.status == 0 and "CERTIFICATE_VERIFY_FAILED" in str(r.error)
    finally:
        server.shutdown()


@pytest.mark.parametrize("flag", ["--ca-bundle", "--users-file"])
def test_a_missing_file_option_is_one_line_exit_2(tmp_path, flag) -> None:
    from tests.support.cli import labcap

    out = tmp_path / "run"
    missing = tmp_path / "absent.pem"
    r = labcap(
        "run", "--host", "http://127.0.0.1:9", "--scenario", "jupyterhub",
        flag, missing, "--out", out,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{flag} {missing}: no such file" in lines[0], r.stderr
    assert not out.exists()
