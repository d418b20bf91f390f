"""Open a page in headless Chromium over the DevTools protocol and report what happened.

Used by the report tests: console errors, uncaught exceptions, every network
request the page made, and a JavaScript expression evaluated once the page
has loaded. Chromium comes from Debian's package (scripts/bootstrap.sh).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--window-size=1280,900",
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    value: object = None
    load_s: float = 0.0


def visit(url: str, expression: str, *, timeout_s: float = 60.0) -> PageVisit:
    """Load ``url``, wait for the load event, evaluate ``expression``; everything bounded."""
    import websocket

    profile = Path(tempfile.mkdtemp(prefix="labcap-chromium-"))
    proc = subprocess.Popen(
        [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        ws_url = _page_ws_url(port, deadline)
        ws = websocket.create_connection(ws_url, timeout=timeout_s)
        try:
            return _drive(ws, url, expression, deadline)
        finally:
            ws.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _page_ws_url(port: int, deadline: float) -> str:
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("chromium has no page target")
        time.sleep(0.1)


def _drive(ws, url: str, expression: str, deadline: float) -> PageVisit:
    visit_ = PageVisit()
    ids = iter(range(1, 10_000))

    def send(method: str, **params) -> int:
        i = next(ids)
        ws.send(json.dumps({"id": i, "method": method, "params": params}))
        return i

    def handle(msg: dict) -> None:
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Network.requestWillBeSent":
            visit_.requests.append(p["request"]["url"])
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            visit_.console_errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
            )
        elif m == "Runtime.exceptionThrown":
            visit_.exceptions.append(p["exceptionDetails"].get("text", "exception"))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            visit_.console_errors.append(p["entry"].get("text", ""))

    def wait_for(pred) -> dict:
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            handle(msg)
            if pred(msg):
                return msg
        raise TimeoutError("page did not finish in time")

    for domain in ("Network.enable", "Runtime.enable", "Log.enable", "Page.enable"):
        i = send(domain)
        wait_for(lambda m, i=i: m.get("id") == i)
    started = time.monotonic()
    send("Page.navigate", url=url)
    wait_for(lambda m: m.get("method") == "Page.loadEventFired")
    visit_.load_s = time.monotonic() - started
    i = send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
    reply = wait_for(lambda m: m.get("id") == i)
    visit_.value = reply["result"]["result"].get("value")
    return visit_
