"""Which way the JupyterHub journey gets in (``--login``), checked before a run starts, and
the sweep that removes the run's hub accounts when it ends (also after Ctrl-C, SIGTERM or
a crash of the load engine).

- ``api``: an admin/service token (``$LABCAP_HUB_TOKEN`` by default, ``--hub-token-env``)
  creates users named ``labcap-<run id>-...`` through the hub's REST API; the run deletes
  them afterwards, and ``labcap cleanup --hub URL`` removes what a killed run left.
- ``form``: the hub's login page with ``$LABCAP_HUB_PASSWORD``, under fresh names or the
  accounts named in ``--users-file``.
- ``auto`` (the default): ``api`` when the token variable is set, else ``form``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.clients.hub import HubAdmin, run_prefix
from labcap.errors import LabcapError

LOGINS = ("auto", "api", "form")
DEFAULT_TOKEN_TTL_S = 3600


@dataclass(frozen=True)
class HubLogin:
    """The journey's way in, as the engine gets it (``token`` only through its environment)."""

    login: str  # "api" | "form"
    token: str = field(default="", repr=False)
    prefix: str = ""  # api: labcap-<run id>
    users_file: str = ""  # form: pre-created accounts, one a line
    token_ttl_s: int = DEFAULT_TOKEN_TTL_S

    def engine_config(self) -> dict[str, Any]:
        """The engine config's ``hub`` record: no secret in it."""
        return {
            "login": self.login,
            "prefix": self.prefix,
            "users_file": self.users_file,
            "token_ttl_s": self.token_ttl_s,
        }

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"login": self.login}
        if self.login == "api":
            out["account_prefix"] = self.prefix
        if self.users_file:
            out["users_file"] = self.users_file
        return out


def resolve_login(
    login: str,
    *,
    token_env: str,
    users_file: str | None,
    uses_hub: bool,
    hub_url: str | None,
    token: str | None = None,
) -> HubLogin | None:
    """``--login``, ``--hub-token-env`` and ``--users-file`` checked; the API token is
    checked against the hub (accepted, the scopes it needs) before anything runs.
    ``token``: given directly (the reference lab's), else read from ``token_env``."""
    if login not in LOGINS:
        raise LabcapError(f"--login {login!r}: choose one of {', '.join(LOGINS)}")
    if token is None:
        token = os.environ.get(token_env, "")
    if users_file is not None and not Path(users_file).is_file():
        raise LabcapError(f"--users-file {users_file}: no such file")
    if not uses_hub:
        return None
    if login == "auto":
        login = "api" if token and not users_file else "form"
    if login == "api":
        if users_file:
            raise LabcapError(
                "--users-file names accounts for --login form; --login api makes its own"
            )
        if not token:
            raise LabcapError(f"--login api needs an admin or service token in ${token_env}")
        if hub_url:
            admin = HubAdmin(hub_url, token, token_env=token_env)
            try:
                admin.check()
            finally:
                admin.close()
        return HubLogin("api", token=token, prefix=run_prefix(secrets.token_hex(4)))
    return HubLogin("form", users_file=str(Path(users_file).resolve()) if users_file else "")


@contextmanager
def swept(
    hub_url: str | None, hub: HubLogin | None, progress: Callable[[str], None]
) -> Iterator[None]:
    """Around the load: afterwards (however it ended) delete the run's API accounts."""
    try:
        yield
    finally:
        if hub is not None and hub.login == "api" and hub_url:
            sweep_run_accounts(hub_url, hub, progress)


def sweep_run_accounts(hub_url: str, hub: HubLogin, progress: Callable[[str], None]) -> None:
    admin = HubAdmin(hub_url, hub.token)
    try:
        found = admin.sweep(hub.prefix + "-")
    except LabcapError as e:
        progress(f"hub accounts not removed ({e}); run `labcap cleanup --hub {hub_url}` later")
        return
    finally:
        admin.close()
    left = [a for a in found if not a.removed]
    if found:
        progress(f"hub: removed {len(found) - len(left)} of the run's {len(found)} leftover users")
    for a in left:
        progress(f"hub user {a.name} not removed ({a.reason}); `labcap cleanup --hub` retries")
