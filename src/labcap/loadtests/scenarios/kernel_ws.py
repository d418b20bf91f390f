"""Run one cell on a Jupyter kernel over its websocket (messaging protocol 5.3).

Uses the JSON ("legacy") websocket framing that jupyter_server speaks when the
client asks for no subprotocol: every message carries its ``channel``. No
Locust import here; under Locust, gevent has patched ``socket`` so this blocks
only the calling greenlet.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PROTOCOL_VERSION = "5.3"


@dataclass(frozen=True)
class CellResult:
    """What came back for one ``execute_request``."""

    status: str  # "ok", "error" or "aborted" (the kernel's execute_reply status)
    reply_content: dict[str, Any]


def kernel_channels_url(base_url: str, path: str, session_id: str) -> str:
    """``http(s)://host/...`` plus ``path`` as the ws(s) URL of a kernel's channels."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    full_path = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((scheme, parts.netloc, full_path, f"session_id={session_id}", ""))


def execute_request(
    code: str,
    session_id: str,
    username: str = "labcap",
    user_expressions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A shell-channel ``execute_request`` message; its ``header.msg_id`` is fresh.

    ``user_expressions`` (name -> expression) are evaluated after the code; their values
    come back in the execute_reply's content."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": username,
            "session": session_id,
            "date": datetime.now(UTC).isoformat(),
            "msg_type": "execute_request",
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": dict(user_expressions or {}),
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


def is_reply_to(message: dict[str, Any], msg_id: str) -> bool:
    """True for the shell-channel ``execute_reply`` whose parent is ``msg_id``."""
    return (
        message.get("channel") == "shell"
        and message.get("msg_type", message.get("header", {}).get("msg_type")) == "execute_reply"
        and message.get("parent_header", {}).get("msg_id") == msg_id
    )


def run_cell(
    ws_url: str,
    headers: dict[str, str],
    code: str,
    timeout_s: float,
    user_expressions: dict[str, str] | None = None,
) -> CellResult:
    """Connect, send one ``execute_request`` and wait for its reply, all within ``timeout_s``.

    Raises ``TimeoutError`` when no reply came in time; websocket errors propagate.
    """
    import websocket  # websocket-client; imported here so the module loads without it

    from labcap.clients.http import ca_bundle

    deadline = time.monotonic() + timeout_s
    session_id = ws_url.rsplit("session_id=", 1)[-1]
    # websocket-client reads HTTP(S)_PROXY/NO_PROXY itself; the CA bundle is labcap's
    cafile = ca_bundle()
    ws = websocket.create_connection(
        ws_url,
        header=[f"{k}: {v}" for k, v in headers.items()],
        timeout=timeout_s,
        enable_multithread=False,
        sslopt={"ca_certs": cafile} if cafile else None,
    )
    try:
        request = execute_request(code, session_id, user_expressions=user_expressions)
        msg_id = request["header"]["msg_id"]
        ws.send(json.dumps(request))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no execute_reply within {timeout_s:g} s")
            ws.settimeout(left)
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no execute_reply within {timeout_s:g} s") from None
            if not isinstance(raw, str):
                continue  # binary frames are the v1 protocol or buffers; not ours
            message = json.loads(raw)
            if is_reply_to(message, msg_id):
                content = message.get("content", {})
                return CellResult(status=content.get("status", "unknown"), reply_content=content)
    finally:
        ws.close(timeout=1)
