"""JupyterHub's REST API with an admin (or service) token: labcap's own test accounts.

The API journey (``labcap run --login api``) works with any authenticator, also one that
refuses every login (``nullauthenticator``): labcap creates its users through the API,
issues each a short-lived token, and deletes them (with their servers and tokens) at the
end. Every user it creates is named ``labcap-<run id>-...`` (``ACCOUNT_PREFIX``), so a run
that was killed before it could clean up leaves accounts that ``labcap cleanup --hub URL``
finds by that prefix.

The token needs the scopes ``admin:users`` (create and delete users), ``tokens`` (issue a
user's token), ``admin:servers`` (stop a leftover server) and ``list:users`` (find
leftovers). It comes from an environment variable and is never printed or written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from labcap.clients.http import requests_verify
from labcap.errors import LabcapError
from labcap.redact import redact, redact_url

ACCOUNT_PREFIX = "labcap-"
TOKEN_NOTE = "labcap load test"
NEEDED_SCOPES = ("admin:users", "tokens", "admin:servers", "list:users")


@dataclass(frozen=True)
class SweptAccount:
    """One labcap account the sweep found: removed, or why not."""

    name: str
    removed: bool
    reason: str = ""


@dataclass
class HubAdmin:
    """The hub's API at ``hub_url`` (the hub's public URL) with an admin/service token."""

    hub_url: str
    token: str = field(repr=False)
    timeout_s: float = 30.0
    token_env: str = "LABCAP_HUB_TOKEN"  # named in error messages, never the token itself

    def __post_init__(self) -> None:
        import requests

        self.api = self.hub_url.rstrip("/") + "/hub/api"
        self.session = requests.Session()  # trust_env: HTTP(S)_PROXY, NO_PROXY, CA bundle
        self.session.verify = requests_verify()
        self.session.headers["Authorization"] = f"token {self.token}"

    # -- plumbing ----------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        try:
            return self.session.request(
                method, f"{self.api}{path}", timeout=self.timeout_s, **kwargs
            )
        except requests.RequestException as e:
            raise LabcapError(
                f"the hub API at {redact_url(self.api)} did not answer "
                f"({redact(type(e).__name__ + ': ' + str(e), [self.token])})"
            ) from None

    def close(self) -> None:
        self.session.close()

    # -- checks ------------------------------------------------------------------

    def check(self) -> None:
        """The token is accepted and carries the scopes the API journey needs."""
        r = self._call("GET", "/user")
        if r.status_code in (401, 403):
            raise LabcapError(
                f"${self.token_env}: the hub at {redact_url(self.hub_url)} refused the token "
                f"(HTTP {r.status_code})"
            )
        if r.status_code != 200:
            raise LabcapError(
                f"the hub API at {redact_url(self.api)} answered HTTP {r.status_code} to "
                "GET /user; is --host the hub's public URL?"
            )
        try:
            scopes = set(r.json().get("scopes") or ())
        except ValueError:
            raise LabcapError(f"the hub API at {redact_url(self.api)} sent no JSON") from None
        missing = [s for s in NEEDED_SCOPES if not _granted(s, scopes)]
        if missing:
            raise LabcapError(
                f"${self.token_env}: the token lacks the scopes {', '.join(missing)} "
                "(the API journey creates, serves and deletes its own users)"
            )

    # -- accounts ----------------------------------------------------------------

    def user_names(self) -> list[str]:
        """Every user's name (paged, 200 at a time)."""
        names: list[str] = []
        offset = 0
        while True:
            r = self._call("GET", "/users", params={"offset": offset, "limit": 200})
            _expect(r, (200,), "list users")
            page = r.json()
            if isinstance(page, dict):  # the paginated form
                page = page.get("items", [])
            names += [u["name"] for u in page]
            if len(page) < 200:
                return names
            offset += len(page)

    def create_user(self, name: str) -> None:
        r = self._call("POST", f"/users/{quote(name)}")
        _expect(r, (201,), f"create user {name}")

    def issue_token(self, name: str, expires_in_s: int, note: str = TOKEN_NOTE) -> str:
        r = self._call(
            "POST",
            f"/users/{quote(name)}/tokens",
            json={"note": note, "expires_in": int(expires_in_s)},
        )
        _expect(r, (200, 201), f"issue a token for {name}")
        return str(r.json()["token"])

    def tokens(self, name: str) -> list[dict[str, Any]]:
        r = self._call("GET", f"/users/{quote(name)}/tokens")
        _expect(r, (200,), f"list tokens of {name}")
        body = r.json()
        return list(body.get("api_tokens", []) if isinstance(body, dict) else body)

    def revoke_labcap_tokens(self, name: str) -> int:
        """Delete ``name``'s tokens that labcap issued (note starts with ``labcap``)."""
        n = 0
        for t in self.tokens(name):
            if str(t.get("note") or "").startswith("labcap"):
                r = self._call("DELETE", f"/users/{quote(name)}/tokens/{quote(str(t['id']))}")
                _expect(r, (204, 404), f"delete a token of {name}")
                n += 1
        return n

    def stop_server(self, name: str, wait_s: float = 60.0, poll_s: float = 0.5) -> None:
        """Stop ``name``'s default server (pending or running) and wait until it is gone."""
        deadline = time.monotonic() + wait_s
        while True:
            r = self._call("GET", f"/users/{quote(name)}")
            if r.status_code == 404:
                return
            _expect(r, (200,), f"read user {name}")
            if not (r.json().get("servers") or {}).get(""):
                return
            r = self._call("DELETE", f"/users/{quote(name)}/server")
            # 400: a spawn or stop is pending; ask again until it settles
            _expect(r, (202, 204, 400, 404), f"stop the server of {name}")
            if time.monotonic() > deadline:
                raise LabcapError(f"the server of {name} was still there after {wait_s:g} s")
            time.sleep(poll_s)

    def delete_user(self, name: str, wait_s: float = 60.0) -> None:
        """Stop the user's server, then delete the user (its tokens go with it)."""
        deadline = time.monotonic() + wait_s
        while True:
            self.stop_server(name, wait_s=max(1.0, deadline - time.monotonic()))
            r = self._call("DELETE", f"/users/{quote(name)}")
            if r.status_code in (204, 404):
                return
            if r.status_code != 400 or time.monotonic() > deadline:
                _expect(r, (204, 404), f"delete user {name}")
            time.sleep(0.5)

    def sweep(
        self, prefix: str, progress: Callable[[str], None] | None = None, dry_run: bool = False
    ) -> list[SweptAccount]:
        """Delete every user whose name starts with ``prefix`` (labcap's accounts)."""
        if not prefix.startswith(ACCOUNT_PREFIX):
            raise LabcapError(f"refusing to sweep hub users by {prefix!r}: not labcap's prefix")
        out = []
        for name in sorted(n for n in self.user_names() if n.startswith(prefix)):
            if dry_run:
                out.append(SweptAccount(name, False, "would remove"))
                continue
            try:
                self.delete_user(name)
                out.append(SweptAccount(name, True))
            except LabcapError as e:
                out.append(SweptAccount(name, False, str(e)))
        if progress:
            for a in out:
                progress(f"hub user {a.name}: {'removed' if a.removed else a.reason}")
        return out


def run_prefix(run_id: str) -> str:
    """The name prefix of one run's accounts: ``labcap-<run id>``."""
    return f"{ACCOUNT_PREFIX}{run_id}".lower()


def _granted(needed: str, scopes: Iterable[str]) -> bool:
    """``needed`` is held unfiltered, or implied by ``admin:users`` (list:users, ...)."""
    scopes = set(scopes)
    implied = {"list:users": {"admin:users"}, "admin:servers": set(), "tokens": set()}
    return needed in scopes or bool(implied.get(needed, set()) & scopes)


def _expect(response: Any, ok: tuple[int, ...], what: str) -> None:
    if response.status_code not in ok:
        raise LabcapError(f"the hub refused to {what} (HTTP {response.status_code})")
