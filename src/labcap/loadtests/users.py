"""Locust users built on labcap's own client (imports Locust: load-engine processes only).

``WireHttpUser`` is a drop-in for ``FastHttpUser`` in a locustfile that only needs plain
HTTP/1.1 calls (GET/POST with JSON or bytes, query params, headers; no cookies, redirects
or compression): ``self.client.get(path, name=..., check=...)`` reports each request to
Locust's request event, timed to the kernel's receipt of the response
(``labcap.loadtests.wire``); ``check(response)`` returning a reason fails it.
"""

from __future__ import annotations

import ssl
from typing import Any

from locust import User

from labcap.clients.http import ca_bundle, proxy_for
from labcap.loadtests.wire import WireSession


class WireHttpUser(User):
    abstract = True
    timeout_s = 60.0  # per request: connect, send and the whole response
    # https only: a CA bundle to trust (the lab's own CA), else $REQUESTS_CA_BUNDLE,
    # $SSL_CERT_FILE, then the system's trust store
    ca_file: str | None = None
    # sent with every request (e.g. credentials)
    auth_headers: dict[str, str] = {}  # noqa: RUF012 (never mutated)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if not self.host:
            raise ValueError(f"{type(self).__name__} has no host: pass --host or set `host`")
        cafile = self.ca_file or ca_bundle()
        context = ssl.create_default_context(cafile=cafile) if cafile else None
        self.client = WireSession(
            self.host,
            environment.events.request,
            user=self,
            timeout_s=self.timeout_s,
            headers=dict(self.auth_headers),
            ssl_context=context,
            proxy=proxy_for(self.host),
        )
