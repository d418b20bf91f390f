"""The JupyterHub journey: log in, spawn a server, run a cell on a kernel, stop everything.

Imported only by the load engine subprocess (it imports Locust). The engine
subclasses ``JupyterHubUser`` per run, setting ``host``, ``lab_password`` and
sometimes ``wait_time``; for the API journey ``login = "api"``, ``admin_token`` and
``username_prefix`` (``labcap-<run id>``).

Two ways in. ``form``: the hub's login page and form, then a token for the user
(needs an authenticator that accepts the password given). ``api``: an admin/service
token creates the user through the REST API and issues it a short-lived token; works
with any authenticator, also one that refuses every login. The API journey deletes its
user (server and tokens with it) when the simulated user stops; the run sweeps what is
left by the name prefix. Request names (stable; SLOs and reports key on them):

``hub.login_page``, ``hub.login``, ``hub.home`` (form), ``hub.user_create`` (api),
``hub.token``,
``hub.spawn``,
``hub.spawn_ready`` (SPAWN event: spawn POST until the hub says ready),
``kernel.start``, ``kernel.execute`` (WS event: connect, execute, reply),
``kernel.workload`` (with ``--kernel-workload``: the workload cell, connect to reply; a
skipped cell is not timed, its reason goes to the run's kernel_workload table),
``kernel.stop``, ``hub.stop``.

Readiness polls go through a private session and are not reported: they would
swamp the request counts and tell nothing that ``hub.spawn_ready`` does not.
"""

from __future__ import annotations

import contextlib
import html
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
import requests
from locust import HttpUser, between, task

from labcap.clients.http import configured, requests_verify
from labcap.loadtests.kernel_workloads import (
    ENDPOINT,
    RESULT_VARIABLE,
    WorkloadOutcome,
    append_outcome,
    outcome_from_reply,
)
from labcap.loadtests.scenarios.common import (
    AccountPool,
    StepFailed,
    describe,
    fire,
    hub_xsrf,
    unique_name,
)
from labcap.loadtests.scenarios.kernel_ws import kernel_channels_url, run_cell
from labcap.redact import redact

_XSRF_FIELD = re.compile(r'name="_xsrf"\s+value="([^"]*)"')


@dataclass(frozen=True)
class HubJourneySettings:
    """Knobs of the JupyterHub journey; override with a subclass attribute ``settings``."""

    spawn_ready_timeout_s: float = field(
        default=120.0, metadata={"help": "a server not ready this long after the spawn fails"}
    )
    poll_interval_s: float = field(
        default=0.3, metadata={"help": "how often to ask the hub whether the server is ready"}
    )
    execute_timeout_s: float = field(
        default=30.0, metadata={"help": "connect + execute + reply must fit in this"}
    )
    stop_timeout_s: float = field(
        default=60.0, metadata={"help": "how long to wait for a stopping server to be gone"}
    )
    request_timeout_s: float = field(
        default=30.0, metadata={"help": "limit for any single HTTP request"}
    )
    code: str = field(default="sum(range(1000))", metadata={"help": "the cell that is executed"})
    kernel_name: str = field(default="python3", metadata={"help": "kernelspec to start"})
    initial_delay_max_s: float = field(
        default=1.0, metadata={"help": "users wait uniform(0, this) before their first request"}
    )


class JupyterHubUser(HttpUser):
    """One lab user: logs in once, then spawn → kernel → execute → stop, again and again."""

    host = None
    target = "jupyterhub"
    lab_password: str = ""
    username_prefix = "labcap"
    login = "form"  # "form": the login page; "api": users made with the admin token
    admin_token: str = ""  # the API journey's admin/service token (from the environment)
    token_ttl_s = 3600  # expires_in of the token the API journey issues each user
    # pre-created accounts (the engine sets it from $LABCAP_HUB_USERS_FILE); None: each user
    # logs in under a fresh unique name, for hubs that create users at first login
    account_pool: AccountPool | None = None
    wait_time = between(1, 3)
    settings = HubJourneySettings()
    # --kernel-workload (the engine sets it): KernelWorkload.to_dict() plus "log", the run's
    # kernel_workload.jsonl; None: only the trivial cell
    kernel_workload: dict[str, Any] | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        pool = self.account_pool if self.login == "form" else None
        self.username = pool.take() if pool is not None else unique_name(self.username_prefix)
        self._created = False  # the API journey made this user (and deletes it)
        self._token_id: str | None = None  # the form journey's token, revoked at the end
        self._token: str | None = None
        self._server_maybe_running = False
        # readiness/stop polls: not reported to Locust (see module docstring)
        self._quiet = requests.Session()
        # Locust's HttpUser ignores the environment (trust_env off, for speed); a lab behind
        # a proxy or with its own CA needs it: HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE
        if configured():
            self.client.trust_env = True
            self.client.verify = self._quiet.verify = requests_verify()

    # -- Locust hooks -------------------------------------------------------

    def on_start(self) -> None:
        gevent.sleep(random.uniform(0.0, self.settings.initial_delay_max_s))
        with contextlib.suppress(StepFailed):  # reported; the task retries the login
            self._sign_in()

    @task
    def journey(self) -> None:
        if self._token is None:
            try:
                self._sign_in()
            except StepFailed:
                return
        try:
            self._spawn()
            kernel_id = self._start_kernel()
            self._execute(kernel_id)
            if self.kernel_workload:
                self._run_workload(kernel_id, self.kernel_workload)
            self._stop_kernel(kernel_id)
        except StepFailed:
            pass  # reported already; the server is stopped below either way
        finally:
            self._stop_server_quietly()

    def on_stop(self) -> None:
        self._stop_server_quietly()
        if self._created:
            self._delete_user_quietly()
        elif self._token_id and self._token:
            self._revoke_token_quietly()
        self._quiet.close()
        if self.login == "form" and self.account_pool is not None and self.username:
            self.account_pool.give_back(self.username)

    # -- steps --------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.lab_password, self._token, self.admin_token) if s)

    def _sign_in(self) -> None:
        if self.login == "api":
            self._provision()
        else:
            self._login()

    def _admin(self) -> dict[str, str]:
        return {"Authorization": f"token {self.admin_token}"}

    def _provision(self) -> None:
        """API journey: create the user with the admin token, issue it a short-lived token."""
        timeout = self.settings.request_timeout_s
        if not self._created:
            with self.client.post(
                f"/hub/api/users/{self.username}",
                headers=self._admin(),
                name="hub.user_create",
                catch_response=True,
                timeout=timeout,
            ) as r:
                if r.status_code not in (201, 409):  # 409: made by an earlier, failed try
                    raise self._fail(r, "user create")
            self._created = True
        with self.client.post(
            f"/hub/api/users/{self.username}/tokens",
            json={"note": "labcap load test", "expires_in": int(self.token_ttl_s)},
            headers=self._admin(),
            name="hub.token",
            catch_response=True,
            timeout=timeout,
        ) as r:
            if r.status_code not in (200, 201):
                raise self._fail(r, "token request")
            try:
                self._token = r.json()["token"]
            except (ValueError, KeyError, TypeError):
                r.failure("token response has no token")
                raise StepFailed("no token") from None

    def _revoke_token_quietly(self) -> None:
        """Form journey: the token labcap asked for goes when the user stops (unreported)."""
        with contextlib.suppress(requests.RequestException):
            r = self._quiet.delete(
                f"{self.host}/hub/api/users/{self.username}/tokens/{self._token_id}",
                headers=self._auth(),
                timeout=self.settings.request_timeout_s,
            )
            if r.status_code in (204, 404):
                self._token = self._token_id = None

    def _delete_user_quietly(self) -> None:
        """Delete the user the API journey made (its server and tokens go with it);
        unreported. What fails here the run's sweep removes afterwards."""
        from labcap.clients.hub import HubAdmin

        admin = HubAdmin(self.host or "", self.admin_token, self.settings.request_timeout_s)
        try:
            admin.delete_user(self.username, wait_s=self.settings.stop_timeout_s)
            self._created = False
        except Exception:  # noqa: BLE001 (the sweep after the run retries)
            pass
        finally:
            admin.close()

    def _fail(self, response: Any, step: str) -> StepFailed:
        """Mark ``response`` failed with a secret-free reason; return the exception to raise."""
        if response.status_code == 0 and getattr(response, "error", None) is not None:
            reason = f"{step}: {describe(response.error, self._secrets())}"
        else:
            reason = f"HTTP {response.status_code} on {step}"
        response.failure(redact(reason, self._secrets()))
        return StepFailed(reason)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self._token}"}

    def _login(self) -> None:
        if not self.username:
            n = self.account_pool.size if self.account_pool is not None else 0
            reason = f"no free account: the users file lists {n}, all in use"
            fire(self.environment.events, "POST", "hub.login", time.perf_counter(), reason)
            raise StepFailed(reason)
        timeout = self.settings.request_timeout_s
        # a retry starts from a fresh session: a logged-in one is redirected away from
        # /hub/login (to /hub/spawn, which would start a server unasked)
        self.client.cookies.clear()
        with self.client.get(
            "/hub/login", name="hub.login_page", catch_response=True, timeout=timeout
        ) as r:
            if r.status_code != 200:
                raise self._fail(r, "login page")
            match = _XSRF_FIELD.search(r.text)
            if match is None:
                r.failure("no _xsrf field on the login page")
                raise StepFailed("no _xsrf field")
        form = {
            "username": self.username,
            "password": self.lab_password,
            "_xsrf": html.unescape(match[1]),
        }
        # no redirects: following /hub/ → /hub/spawn would start a server implicitly
        self._page("POST", "/hub/login", "hub.login", 302, "login", data=form)
        # the page a browser lands on hands out the logged-in session's _xsrf cookie (path
        # /hub/): JupyterHub 5 ties it to the session, so a token request with the pre-login
        # one gets HTTP 403 ("XSRF cookie does not match"). /hub/home, not the 302's /hub/:
        # that one goes on to /hub/spawn and would start a server
        self._page("GET", "/hub/home", "hub.home", 200, "home page")
        with self.client.post(
            f"/hub/api/users/{self.username}/tokens",
            json={"note": "labcap load test"},
            headers={"X-XSRFToken": self._xsrf_cookie()},
            name="hub.token",
            catch_response=True,
            timeout=timeout,
        ) as r:
            if r.status_code != 201:
                raise self._fail(r, "token request")
            try:
                self._token = r.json()["token"]
                self._token_id = r.json().get("id")
            except (ValueError, KeyError, TypeError, AttributeError):
                r.failure("token response has no token")
                raise StepFailed("no token") from None

    def _page(self, method: str, path: str, name: str, status: int, step: str, **kw: Any) -> None:
        """One reported request of the login, not followed past a redirect; any other status
        than ``status`` fails it (and the login) as ``step``."""
        with self.client.request(
            method,
            path,
            name=name,
            catch_response=True,
            allow_redirects=False,
            timeout=self.settings.request_timeout_s,
            **kw,
        ) as r:
            if r.status_code != status:
                raise self._fail(r, step)

    def _xsrf_cookie(self) -> str:
        return hub_xsrf(self.client.cookies)

    def _spawn(self) -> None:
        started = time.perf_counter()
        self._server_maybe_running = True
        with self.client.post(
            f"/hub/api/users/{self.username}/server",
            headers=self._auth(),
            name="hub.spawn",
            catch_response=True,
            timeout=self.settings.request_timeout_s,
        ) as r:
            if r.status_code not in (201, 202):
                raise self._fail(r, "spawn")  # counted once, under hub.spawn
        error = self._wait_ready(started)
        fire(self.environment.events, "SPAWN", "hub.spawn_ready", started, error)
        if error is not None:
            raise StepFailed(error)

    def _server_state(self) -> dict[str, Any] | None:
        """The default server's model from the hub, ``None`` when it has none."""
        r = self._quiet.get(
            f"{self.host}/hub/api/users/{self.username}",
            headers=self._auth(),
            timeout=self.settings.request_timeout_s,
        )
        r.raise_for_status()
        servers = r.json().get("servers")
        if servers is None:
            raise PermissionError("the token may not read this user's servers")
        return servers.get("")

    def _wait_ready(self, started: float) -> str | None:
        """Poll until ready; the failure reason, or ``None`` once the server is ready."""
        limit_s = self.settings.spawn_ready_timeout_s
        last_error = ""
        while time.perf_counter() - started < limit_s:
            try:
                server = self._server_state()
            except (requests.RequestException, ValueError, PermissionError) as e:
                last_error = describe(e, self._secrets())
            else:
                if server is None:
                    return "spawn failed: the hub dropped the pending server"
                if server.get("ready"):
                    return None
            gevent.sleep(self.settings.poll_interval_s)
        suffix = f" (last poll: {last_error})" if last_error else ""
        return redact(f"spawn not ready after {limit_s:g} s{suffix}", self._secrets())

    def _start_kernel(self) -> str:
        with self.client.post(
            f"/user/{self.username}/api/kernels",
            json={"name": self.settings.kernel_name},
            headers=self._auth(),
            name="kernel.start",
            catch_response=True,
            timeout=self.settings.request_timeout_s,
        ) as r:
            if r.status_code != 201:
                raise self._fail(r, "kernel start")
            try:
                return str(r.json()["id"])
            except (ValueError, KeyError, TypeError):
                r.failure("kernel start response has no id")
                raise StepFailed("no kernel id") from None

    def _execute(self, kernel_id: str) -> None:
        session_id = random.randbytes(16).hex()
        url = kernel_channels_url(
            self.host, f"/user/{self.username}/api/kernels/{kernel_id}/channels", session_id
        )
        started = time.perf_counter()
        try:
            result = run_cell(
                url, self._auth(), self.settings.code, self.settings.execute_timeout_s
            )
        except Exception as e:  # websocket-client raises many types; all mean a failed step
            error: str | None = describe(e, self._secrets())
        else:
            error = None if result.status == "ok" else f"execute_reply status {result.status}"
        fire(self.environment.events, "WS", "kernel.execute", started, error)
        if error is not None:
            raise StepFailed(error)

    def _run_workload(self, kernel_id: str, workload: dict[str, Any]) -> None:
        """The workload cell: timed as kernel.workload when it ran, logged either way."""
        session_id = random.randbytes(16).hex()
        url = kernel_channels_url(
            self.host, f"/user/{self.username}/api/kernels/{kernel_id}/channels", session_id
        )
        timeout_s = workload["expected_s"] + self.settings.execute_timeout_s
        started = time.perf_counter()
        t_unix = time.time()
        detail = ""
        try:
            result = run_cell(
                url, self._auth(), workload["code"], timeout_s, {"labcap": RESULT_VARIABLE}
            )
        except Exception as e:  # websocket-client raises many types; all mean a failed cell
            outcome, reason = "failed", describe(e, self._secrets())
        else:
            outcome, reason, detail = outcome_from_reply(result.status, result.reply_content)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if outcome != "skipped":  # a skipped cell did no work: its time is not the workload's
            error = reason if outcome == "failed" else None
            fire(self.environment.events, "WS", ENDPOINT, started, error)
        append_outcome(
            workload["log"],
            WorkloadOutcome(
                t_unix, self.username, workload["spec"], outcome, reason, elapsed_ms, detail
            ),
        )
        if outcome == "failed":
            raise StepFailed(reason)

    def _stop_kernel(self, kernel_id: str) -> None:
        with self.client.delete(
            f"/user/{self.username}/api/kernels/{kernel_id}",
            headers=self._auth(),
            name="kernel.stop",
            catch_response=True,
            timeout=self.settings.request_timeout_s,
        ) as r:
            if r.status_code != 204:
                raise self._fail(r, "kernel stop")

    def _stop_server(self) -> None:
        """DELETE the server; on 202 wait (bounded) until the hub no longer lists it."""
        with self.client.delete(
            f"/hub/api/users/{self.username}/server",
            headers=self._auth(),
            name="hub.stop",
            catch_response=True,
            timeout=self.settings.request_timeout_s,
        ) as r:
            if r.status_code not in (202, 204):
                raise self._fail(r, "server stop")
            if r.status_code == 202 and not self._wait_gone():
                r.failure(f"server still stopping after {self.settings.stop_timeout_s:g} s")
                raise StepFailed("stop timed out")
        self._server_maybe_running = False

    def _wait_gone(self) -> bool:
        deadline = time.perf_counter() + self.settings.stop_timeout_s
        while time.perf_counter() < deadline:
            try:
                if self._server_state() is None:
                    return True
            except (requests.RequestException, ValueError, PermissionError):
                pass  # keep polling until the deadline
            gevent.sleep(self.settings.poll_interval_s)
        return False

    def _stop_server_quietly(self) -> None:
        if not self._server_maybe_running or self._token is None:
            return
        with contextlib.suppress(StepFailed):  # reported; on_stop tries once more
            self._stop_server()
