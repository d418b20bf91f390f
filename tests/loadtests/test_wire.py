"""labcap's wire client against a real loopback HTTP/1.1 server, and through `labcap run`."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from labcap.loadtests.wire import CheckFailed, HTTPStatusError, WireError, WireSession
from tests.support.servers import loopback_server

SUPPORT = Path(__file__).parent.parent / "support"


@pytest.fixture(scope="module")
def server():
    with loopback_server("wire_server.py") as url:
        yield url


class Events:
    """Stands in for Locust's ``events.request``: keeps what each request reported."""

    def __init__(self) -> None:
        self.fired: list[dict] = []

    def fire(self, **kw) -> None:
        self.fired.append(kw)


def test_bodies_in_every_framing_over_one_connection(server):
    s = WireSession(server)
    r = s.get("/len")
    assert (r.status, r.content, r.ok, r.error) == (200, b"hello", True, None)
    sock = s.conn.sock
    r = s.get("/chunked")
    assert r.content == b"chunk-one;two;" + b"three" * 3000  # chunk extensions and trailer
    assert s.get("/len").content == b"hello"
    assert s.conn.sock is sock  # keep-alive: still the first connection
    r = s.request("HEAD", "/len")
    assert r.status == 200 and r.content == b"" and r.headers["content-length"] == "5"
    r = s.get("/close")
    assert r.content == b"until-close" and s.conn.sock is None  # read to the close
    assert s.get("/len").content == b"hello"  # and a new connection after it


def test_post_json_and_bytes(server):
    s = WireSession(server + "/")
    r = s.post("/echo", json={"metric": 0.5})
    assert r.status == 201 and r.json() == {
        "body": '{"metric": 0.5}',
        "content_type": "application/json",
    }
    assert s.post("echo", data=b"raw").json()["body"] == "raw"  # no leading slash
    assert s.post("/echo").json()["body"] == ""  # Content-Length: 0 is sent


def test_query_params_and_a_check_on_the_body(server):
    events = Events()
    s = WireSession(server, events)
    r = s.get("/slow", params={"ms": 1})  # /slow reads ms from the query string
    assert r.ok and r.content == b"slow"

    def wants_run_id(response):
        return None if "run_id" in response.json()["body"] else "no run_id in the answer"

    r = s.post("/echo", json={"run_id": "x"}, check=wants_run_id)
    assert r.ok
    r = s.post("/echo", json={"other": 1}, check=wants_run_id, name="api.create")
    assert not r.ok and isinstance(r.error, CheckFailed) and r.status == 201
    assert events.fired[-1]["exception"] is r.error
    assert str(events.fired[-1]["exception"]) == "no run_id in the answer"
    s.get("/status/404", check=lambda response: pytest.fail("check called on a 404"))


def test_kernel_clock_on_loopback(server):
    s = WireSession(server)
    r = s.get("/slow?ms=50")
    assert r.clock == "kernel"
    assert 50_000 <= r.elapsed_us < 5_000_000


def test_a_keep_alive_connection_closed_by_the_server_is_reopened(server):
    s = WireSession(server)
    assert s.get("/once").content == b"once"
    first = s.conn.sock
    r = s.get("/len")  # the server closed `first` without saying so: sent once more
    assert r.ok and r.content == b"hello" and s.conn.sock is not first


def test_failures_are_reported_not_raised(server):
    events = Events()
    s = WireSession(server, events)
    r = s.get("/status/503", name="api.down", params={"token": "s3cret-query"})
    assert r.status == 503 and isinstance(r.error, HTTPStatusError) and not r.ok
    assert "s3cret" not in str(r.error)  # a reason names the path, never the query
    r = s.get("/garbage")
    assert r.status == 0 and isinstance(r.error, WireError)
    assert "not an HTTP/1.x status line" in str(r.error)
    slow = WireSession(server, events, timeout_s=0.2).get("/slow?ms=2000")
    assert isinstance(slow.error, TimeoutError)
    with loopback_server("wire_server.py") as gone:
        pass  # its port is free again: nothing listens
    refused = WireSession(gone, events).get("/len")
    assert isinstance(refused.error, ConnectionRefusedError)
    names = [(e["name"], type(e["exception"]).__name__) for e in events.fired]
    assert names == [
        ("api.down", "HTTPStatusError"),
        ("/garbage", "WireError"),
        ("/slow?ms=2000", "TimeoutError"),
        ("/len", "ConnectionRefusedError"),
    ]
    ev = events.fired[0]
    assert ev["request_type"] == "GET" and ev["response_length"] == 2
    assert ev["start_time"] > 0


def test_not_an_http_url():
    with pytest.raises(ValueError, match="not an http"):
        WireSession("ftp://127.0.0.1:21")


GEVENT_LATE_WAKE = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()
    import json, sys, time

    import gevent
    from gevent.monkey import get_original

    from labcap.loadtests.wire import WireSession

    block = get_original("time", "sleep")
    s = WireSession(sys.argv[1])
    s.get("/len")  # connected
    out = {}

    def request():
        t = time.perf_counter()
        r = s.get("/len")
        out.update(elapsed_us=r.elapsed_us, clock=r.clock, wall_us=(time.perf_counter() - t) * 1e6)

    g = gevent.spawn(request)
    hog = gevent.spawn(block, 0.3)  # runs while `request` waits: its answer sits unread
    gevent.joinall([g, hog])
    print(json.dumps(out))
    """
)


def test_a_late_wake_does_not_lengthen_the_measurement(server):
    """Under gevent another greenlet holds the loop 300 ms while the response sits in the
    socket: the wall time is >= 300 ms, the measurement is the kernel's arrival."""
    r = subprocess.run(
        [sys.executable, "-c", GEVENT_LATE_WAKE, server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["wall_us"] >= 300_000
    assert out["clock"] == "kernel" and out["elapsed_us"] < 100_000


def test_labcap_run_with_a_wire_locustfile(tmp_path, server):
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "labcap.cli", "run", "--host", server, "--scenario",
         str(SUPPORT / "locustfile_wire.py"), "--users", "4", "--step-duration", "5s",
         "--settle", "1s", "--window", "1s", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    windows = pd.read_parquet(out / "windows.parquet")
    by = windows.groupby("endpoint")[["requests", "failures"]].sum()
    assert by.loc["wire.get", "requests"] > 20 and by.loc["wire.get", "failures"] == 0
    assert by.loc["wire.unavailable", "failures"] == by.loc["wire.unavailable", "requests"] > 0
    failures = pd.read_parquet(out / "failures.parquet")
    assert failures["reason"].str.contains("HTTP 503").all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lockstep"]["flagged"] is False
    assert manifest["calibration"]["floor_client"] == "wire"  # its floor judges the SLOs


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """The same server over https, with a self-signed certificate for 127.0.0.1."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed (apt-get install openssl)")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with loopback_server("wire_server.py", str(cert), str(key)) as url:
        yield url.replace("http://", "https://"), cert


def test_https_times_in_user_space_and_checks_the_certificate(tls_server):
    url, cert = tls_server
    trusted = WireSession(url, ssl_context=ssl.create_default_context(cafile=str(cert)))
    r = trusted.get("/chunked")
    assert r.ok and r.content.startswith(b"chunk-one;")
    assert r.clock == "user" and r.elapsed_us > 0  # no kernel stamp on decrypted bytes
    assert trusted.get("/len").content == b"hello"  # keep-alive over TLS
    untrusted = WireSession(url).get("/len")  # the system's trust store: not this cert
    assert isinstance(untrusted.error, ssl.SSLCertVerificationError)
