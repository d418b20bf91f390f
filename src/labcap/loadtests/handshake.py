"""The master/worker handshake for load generators on other machines, and its MACs.

Before any work is handed out, a ``labcap worker`` connects to the master's handshake
port and both prove that they hold the shared secret (``LABCAP_WORKER_SECRET``),
without sending it, by an HMAC-SHA256 challenge:

1. master -> worker: ``{"nonce": Nm}`` (32 random bytes, hex)
2. worker -> master: its hello (labcap and Locust versions, its locustfile's sha256 if it
   has its own, its calibration, its clock) with ``mac = HMAC(K, "worker"|Nm|Nw|H(hello))``;
   the master refuses a wrong MAC, another labcap or Locust version, or another
   locustfile, with one line (``{"refused": why}``)
3. master -> worker: the work (the engine configuration: load plan, scenario, the
   locustfile's source and sha256, target URLs; the Locust port; the worker's name; the
   master's clock) with ``mac = HMAC(K, "master"|Nm|Nw|H(work))``: the worker runs no
   locustfile that a master without the secret sent
4. worker -> master: ``{"ready": true}`` with its MAC, or ``{"refused": why}``

Both sides then derive a per-worker session key ``HMAC(K, "session"|Nm|Nw)``: the
worker's ``labcap_join`` (binding its Locust client id to its name), its windows and the
master's clock messages on Locust's link carry a MAC under it, so windows from a Locust
client that did not pass the handshake, or altered on the way, are not merged.

Nothing here is encrypted: the plan, the locustfile, the target URLs and the measured
windows travel in clear (see README, "Workers on other machines"). Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
from typing import Any

from labcap.errors import LabcapError

SECRET_ENV = "LABCAP_WORKER_SECRET"
MIN_SECRET_CHARS = 16
PROTOCOL = 1
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # the work carries the locustfile's source
IO_TIMEOUT_S = 15.0


def read_secret(env: dict[str, str] | None = None) -> bytes:
    """The shared secret from the environment; one clear line when it is missing or short."""
    value = (os.environ if env is None else env).get(SECRET_ENV, "")
    if len(value) < MIN_SECRET_CHARS:
        what = "is not set" if not value else f"is shorter than {MIN_SECRET_CHARS} characters"
        raise LabcapError(
            f"{SECRET_ENV} {what}: master and workers need one shared secret of at least "
            f"{MIN_SECRET_CHARS} characters in their environment (e.g. `openssl rand -hex 32`)"
        )
    return value.encode()


def nonce() -> str:
    return secrets.token_hex(32)


def digest(obj: Any) -> str:
    """sha256 of an object's canonical JSON."""
    return hashlib.sha256(canonical(obj)).hexdigest()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "|".join(parts).encode(), hashlib.sha256).hexdigest()


def mac_ok(key: bytes, given: Any, *parts: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given, mac(key, *parts))


def session_key(secret: bytes, master_nonce: str, worker_nonce: str) -> bytes:
    return bytes.fromhex(mac(secret, "session", master_nonce, worker_nonce))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def signed(key: bytes, role: str, nm: str, nw: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its MAC (over the role, both nonces and the body's digest)."""
    return {**body, "mac": mac(key, role, nm, nw, digest(body))}


def verify(key: bytes, role: str, nm: str, nw: str, message: dict[str, Any]) -> bool:
    body = {k: v for k, v in message.items() if k != "mac"}
    return mac_ok(key, message.get("mac"), role, nm, nw, digest(body))


class Line:
    """Newline-delimited JSON over one TCP connection, bounded in size and time."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(IO_TIMEOUT_S)
        self.sock = sock
        self.file = sock.makefile("rb")

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(canonical(obj) + b"\n")

    def recv(self) -> dict[str, Any]:
        raw = self.file.readline(MAX_MESSAGE_BYTES + 1)
        if not raw:
            raise ConnectionError("the other side closed the connection")
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ConnectionError("message too large")
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ConnectionError("not a handshake message")
        return obj

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self.sock.close()


def parse_address(text: str, *, what: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); one clear line otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep and default_port is not None:
        host, port = text.strip(), str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65534:
        raise LabcapError(f"{what} {text!r}: use HOST:PORT (port 1..65534)")
    return host, int(port)
