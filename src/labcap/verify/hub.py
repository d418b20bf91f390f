"""A JupyterHub user as `labcap verify` drives it: log in through the form, get a token,
spawn the default server (or the one its user_options name), run one expression on a
kernel, and clean up after itself.
"""

from __future__ import annotations

import contextlib
import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from labcap.loadtests.scenarios.common import describe, hub_xsrf
from labcap.redact import redact

_XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]*)"')


class HubStepError(Exception):
    """A step failed; ``step`` says which (login, token, spawn, kernel)."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class HubSettings:
    request_timeout_s: float = 30.0
    spawn_timeout_s: float = 180.0
    stop_timeout_s: float = 60.0
    poll_interval_s: float = 0.3


def direct_session() -> requests.Session:
    """A session to the lab that follows HTTP(S)_PROXY, NO_PROXY and the CA bundle
    (``--ca-bundle``, REQUESTS_CA_BUNDLE, SSL_CERT_FILE) as every labcap client does."""
    from labcap.clients.http import requests_verify

    session = requests.Session()
    session.verify = requests_verify()
    return session


class HubUser:
    """One user on one hub. Use as a context manager: the server it started is stopped and
    the token it created is revoked on the way out; a server that was already running is
    left alone."""

    def __init__(
        self, hub_url: str, username: str, password: str, settings: HubSettings | None = None
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.username = username
        self._password = password
        self.settings = settings or HubSettings()
        self._session = direct_session()
        self._token = ""
        self._token_id = ""
        self._started_server = False
        self.already_running = False

    def __enter__(self) -> HubUser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def _user_api(self) -> str:
        return f"{self.hub_url}/hub/api/users/{quote(self.username, safe='')}"

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._password, self._token) if s)

    def _fail(self, step: str, reason: str) -> HubStepError:
        return HubStepError(step, redact(reason, self._secrets()))

    def _request(self, step: str, method: str, url: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", self.settings.request_timeout_s)
        try:
            return self._session.request(method, url, **kw)
        except requests.RequestException as e:
            raise self._fail(step, describe(e, self._secrets())) from None

    def login(self) -> None:
        """The login form, as a browser submits it; then an API token for this user."""
        page = self._request("login", "GET", f"{self.hub_url}/hub/login")
        match = _XSRF_FIELD.search(page.text) if page.status_code == 200 else None
        if match is None:
            raise self._fail("login", f"login page: HTTP {page.status_code}, no form")
        form = {
            "username": self.username,
            "password": self._password,
            "_xsrf": html.unescape(match[1]),
        }
        r = self._request(
            "login", "POST", f"{self.hub_url}/hub/login", data=form, allow_redirects=False
        )
        if r.status_code != 302 or "/hub/login" in r.headers.get("Location", ""):
            reason = "refused (wrong credentials or blocked user)" if r.status_code == 403 else ""
            raise self._fail("login", f"HTTP {r.status_code} {reason}".strip())
        # where the browser lands next: it hands out the logged-in session's _xsrf cookie
        # (path /hub/); a token request with the pre-login one gets HTTP 403 ("XSRF cookie
        # does not match") on JupyterHub 5.2 with NativeAuthenticator
        self._request("login", "GET", f"{self.hub_url}/hub/home")
        xsrf = hub_xsrf(self._session.cookies)
        r = self._request(
            "token",
            "POST",
            f"{self._user_api}/tokens",
            json={"note": "labcap verify", "expires_in": 3600},
            headers={"X-XSRFToken": xsrf},
        )
        if r.status_code != 201:
            raise self._fail("token", f"HTTP {r.status_code}")
        body = r.json()
        self._token, self._token_id = body.get("token", ""), str(body.get("id", ""))
        self._session.headers["Authorization"] = f"token {self._token}"

    def server_state(self) -> dict[str, Any] | None:
        r = self._request("spawn", "GET", self._user_api)
        if r.status_code != 200:
            raise self._fail("spawn", f"reading the user: HTTP {r.status_code}")
        return (r.json().get("servers") or {}).get("")

    def spawn(self, options: Mapping[str, Any] | None = None) -> float | None:
        """Start the default server and wait until ready: seconds it took, or None when it
        was already running (then it is not ours to stop).

        ``options`` are the server's user_options (the spawn form's choice: KubeSpawner's
        ``{"profile": SLUG}``, DockerSpawner's ``{"image": CHOICE}``), sent as the POST body;
        without them the hub starts its default profile. A server already running with other
        user_options is refused rather than used: it is not the server that was asked for."""
        state = self.server_state()
        if state and state.get("ready"):
            running = state.get("user_options") or {}
            if options and any(running.get(k) != v for k, v in options.items()):
                raise self._fail(
                    "spawn",
                    f"a server is already running with user_options {dict(running)}, not "
                    f"{dict(options)}: stop it, or verify with another user",
                )
            self.already_running = True
            return None
        started = time.monotonic()
        body = {"json": dict(options)} if options else {}
        r = self._request("spawn", "POST", f"{self._user_api}/server", **body)
        if r.status_code not in (201, 202):
            raise self._fail("spawn", f"HTTP {r.status_code}: {r.text[:200]}")
        self._started_server = True
        deadline = started + self.settings.spawn_timeout_s
        while time.monotonic() < deadline:
            state = self.server_state()
            if state is None:
                raise self._fail("spawn", "the hub dropped the pending server (spawn failed)")
            if state.get("ready"):
                return time.monotonic() - started
            time.sleep(self.settings.poll_interval_s)
        raise self._fail("spawn", f"not ready after {self.settings.spawn_timeout_s:g} s")

    def evaluate(self, code: str, expression: str, timeout_s: float = 60.0) -> str:
        """Run ``code`` on a fresh kernel of the user's server; ``expression``'s text/plain."""
        from labcap.loadtests.scenarios.kernel_ws import kernel_channels_url

        base = f"{self.hub_url}/user/{quote(self.username, safe='')}"
        r = self._request("kernel", "POST", f"{base}/api/kernels", json={"name": "python3"})
        if r.status_code != 201:
            raise self._fail("kernel", f"start: HTTP {r.status_code}")
        kernel_id = r.json()["id"]
        try:
            url = kernel_channels_url(
                self.hub_url,
                f"/user/{quote(self.username, safe='')}/api/kernels/{kernel_id}/channels",
                f"labcap-verify-{kernel_id}",
            )
            reply = _execute(
                url, {"Authorization": f"token {self._token}"}, code, expression, timeout_s
            )
        except HubStepError:
            raise
        except Exception as e:  # websocket-client raises many types
            raise self._fail("kernel", describe(e, self._secrets())) from None
        finally:
            with contextlib.suppress(HubStepError):
                self._request("kernel", "DELETE", f"{base}/api/kernels/{kernel_id}")
        if reply.get("status") != "ok":
            raise self._fail("kernel", f"{reply.get('ename', 'error')}: {reply.get('evalue', '')}")
        value = (reply.get("user_expressions") or {}).get(expression, {})
        if value.get("status") != "ok":
            raise self._fail("kernel", f"expression failed: {value.get('evalue', value)}")
        return str(value.get("data", {}).get("text/plain", ""))

    def cleanup(self) -> None:
        """Stop the server this object started, revoke its token; best effort, bounded."""
        if self._started_server:
            with contextlib.suppress(HubStepError):
                self._request("stop", "DELETE", f"{self._user_api}/server")
                deadline = time.monotonic() + self.settings.stop_timeout_s
                while time.monotonic() < deadline and self.server_state() is not None:
                    time.sleep(self.settings.poll_interval_s)
            self._started_server = False
        if self._token_id:
            with contextlib.suppress(HubStepError):
                self._request("token", "DELETE", f"{self._user_api}/tokens/{self._token_id}")
            self._token_id = ""
        self._session.close()


def _execute(
    ws_url: str, headers: dict[str, str], code: str, expression: str, timeout_s: float
) -> dict[str, Any]:
    """One execute_request carrying ``expression`` as a user expression; its reply content."""
    import json

    import websocket

    from labcap.loadtests.scenarios.kernel_ws import execute_request, is_reply_to

    deadline = time.monotonic() + timeout_s
    session_id = ws_url.rsplit("session_id=", 1)[-1]
    from labcap.clients.http import ca_bundle

    cafile = ca_bundle()  # websocket-client follows the proxy variables itself
    ws = websocket.create_connection(
        ws_url,
        header=[f"{k}: {v}" for k, v in headers.items()],
        timeout=timeout_s,
        sslopt={"ca_certs": cafile} if cafile else None,
    )
    try:
        request = execute_request(code, session_id, username="labcap-verify")
        request["content"]["user_expressions"] = {expression: expression}
        ws.send(json.dumps(request))
        while (left := deadline - time.monotonic()) > 0:
            ws.settimeout(left)
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            if isinstance(raw, str) and is_reply_to(
                message := json.loads(raw), request["header"]["msg_id"]
            ):
                return message.get("content", {})
        raise HubStepError("kernel", f"no execute_reply within {timeout_s:g} s")
    finally:
        ws.close(timeout=1)
