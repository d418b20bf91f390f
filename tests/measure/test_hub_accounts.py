"""The API journey (``labcap run --login api``) against real hubs of the test's own: one
with ``nullauthenticator`` (nobody can log in) and one with NativeAuthenticator. labcap
makes its users through the REST API with an admin token and removes them, with their
servers and tokens, when the run ends, also when it is stopped with SIGTERM; ``labcap
cleanup --hub`` removes what a killed run left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cli import labcap, labcap_argv
from tests.support.hub import LoopbackHub, running_hub

AUTHENTICATORS = {
    "null": "nullauthenticator.NullAuthenticator",
    "native": "nativeauthenticator.NativeAuthenticator",
}
LOOPBACK = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@pytest.fixture(scope="module", params=sorted(AUTHENTICATORS))
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    workdir = tmp_path_factory.mktemp(f"hub-{request.param}")
    with running_hub(workdir, AUTHENTICATORS[request.param]) as h:
        # a real user of the lab, with a token of their own: labcap must leave both alone
        with h.api() as s:
            assert s.post(f"{h.url}/hub/api/users/bob", timeout=30).status_code == 201
            r = s.post(f"{h.url}/hub/api/users/bob/tokens", json={"note": "bob's"}, timeout=30)
            assert r.status_code in (200, 201), r.text
        yield h


def _labcap_users(hub: LoopbackHub) -> set[str]:
    return {n for n in hub.user_names() if n.startswith("labcap")}


def _issued_tokens(hub: LoopbackHub, wait_s: float = 30) -> list[dict]:
    """The tokens labcap issued to its users, once there are some (bounded wait)."""
    deadline = time.monotonic() + wait_s
    with hub.api() as s:
        while True:
            issued = []
            for name in _labcap_users(hub):
                r = s.get(f"{hub.url}/hub/api/users/{name}/tokens", timeout=30)
                if r.status_code == 200:
                    notes = r.json()["api_tokens"]
                    issued += [t for t in notes if t.get("note") == "labcap load test"]
            if issued or time.monotonic() > deadline:
                return issued
            time.sleep(0.5)


def _run_args(hub: LoopbackHub, out: Path, step: str = "40s") -> list[object]:
    return [
        "run", "--host", hub.url, "--scenario", "jupyterhub", "--users", "2",
        "--step-duration", step, "--settle", "5s", "--spawn-rate", "2", "--gpu", "none",
        "--no-calibrate", "--out", out, "--json",
    ]  # fmt: skip


def test_api_journey_loads_the_hub_and_leaves_no_labcap_user_or_token(hub, tmp_path):
    before_tokens = hub.token_notes()
    out = tmp_path / "run"
    env = {**LOOPBACK, "LABCAP_HUB_TOKEN": hub.admin_token}
    r = labcap(*_run_args(hub, out), env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert hub.admin_token not in r.stdout + r.stderr
    assert "hub accounts: labcap-" in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hub_accounts"]["login"] == "api"
    assert manifest["hub_accounts"]["account_prefix"].startswith("labcap-")
    for f in out.iterdir():  # the token is written nowhere
        assert hub.admin_token.encode() not in f.read_bytes(), f
    windows = pd.read_parquet(out / "windows.parquet")
    ok = windows.assign(ok=windows["requests"] - windows["failures"]).groupby("endpoint")["ok"]
    ok = ok.sum()
    # the whole journey ran through the API: users made, servers spawned, cells executed
    for endpoint in ("hub.user_create", "hub.token", "hub.spawn_ready", "kernel.execute"):
        assert ok.get(endpoint, 0) > 0, (endpoint, ok.to_dict(), r.stderr[-2000:])
    assert "hub.login" not in ok.index  # the login form was never used
    # afterwards: no labcap user, no labcap token; bob and his token untouched
    assert _labcap_users(hub) == set()
    after_tokens = hub.token_notes()
    assert not [n for notes in after_tokens.values() for n in notes if n.startswith("labcap")]
    assert after_tokens == before_tokens


def test_sigterm_mid_run_still_removes_the_run_users(hub, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, **LOOPBACK, "LABCAP_HUB_TOKEN": hub.admin_token}
    proc = subprocess.Popen(
        labcap_argv(*_run_args(hub, out, step="120s")),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _labcap_users(hub):  # the load has made its first users
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "labcap made no hub user within 120 s"
            time.sleep(0.5)
        time.sleep(3)  # let a spawn get under way
        issued = _issued_tokens(hub)  # each user's token is short-lived
        assert issued and all(t.get("expires_at") for t in issued), issued
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert hub.admin_token not in stderr
    assert _labcap_users(hub) == set(), stderr[-2000:]
    notes = [n for ns in hub.token_notes().values() for n in ns]
    assert not [n for n in notes if n.startswith("labcap")]


def test_cleanup_finds_a_killed_run_users_by_prefix(hub, tmp_path):
    with hub.api() as s:
        for name in ("labcap-0badc0de-a1b2c3-1", "labcap-0badc0de-a1b2c3-2", "labcapper"):
            assert s.post(f"{hub.url}/hub/api/users/{name}", timeout=30).status_code == 201
        r = s.post(
            f"{hub.url}/hub/api/users/labcap-0badc0de-a1b2c3-1/tokens",
            json={"note": "labcap load test", "expires_in": 600},
            timeout=30,
        )
        assert r.status_code in (200, 201)
    env = {**LOOPBACK, "LABCAP_HUB_TOKEN": hub.admin_token}
    args = ("cleanup", "--hub", hub.url, "--run", "0badc0de", "--runs-dir", tmp_path, "--json")
    dry = labcap(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert {u for u in hub.user_names() if u.startswith("labcap-0badc0de")} != set()
    r = labcap(*args, env=env)
    assert r.returncode == 0, r.stderr
    removed = [x["name"] for x in json.loads(r.stdout) if x["kind"] == "hub-user"]
    assert sorted(removed) == ["labcap-0badc0de-a1b2c3-1", "labcap-0badc0de-a1b2c3-2"]
    assert "labcapper" in hub.user_names()  # not labcap's prefix: left alone
    assert not {u for u in hub.user_names() if u.startswith("labcap-0badc0de")}
    assert hub.admin_token not in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("env_token", "extra", "expected"),
    [
        ("not-the-token", (), "refused the token (HTTP 403)"),
        (None, ("--login", "api"), "--login api needs an admin or service token"),
        ("x", ("--login", "api", "--users-file", "USERS"), "--users-file names accounts"),
    ],
)
def test_bad_hub_login_is_one_line_exit_2_before_the_load(
    hub, tmp_path, env_token, extra, expected
):
    users = tmp_path / "users.txt"
    users.write_text("someone\n")
    extra = tuple(str(users) if a == "USERS" else a for a in extra)
    out = tmp_path / "run"
    env = dict(LOOPBACK)
    if env_token is not None:
        env["LABCAP_HUB_TOKEN"] = env_token
    else:
        env["LABCAP_HUB_TOKEN"] = ""
    r = labcap(*_run_args(hub, out), *extra, env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], r.stderr
    assert not out.exists()
    assert _labcap_users(hub) <= {"labcapper"}


def test_form_journey_logs_in_as_the_users_file_and_revokes_its_tokens(tmp_path):
    """The login form with named accounts (--users-file). On a hub of its own: with
    JupyterHub 6, NativeAuthenticator 1.3's login handler fails (HTTP 500, it reads the
    removed ``statsd``), so the form is measured with the shared-password authenticator."""
    import secrets

    password = secrets.token_urlsafe(12)
    with running_hub(tmp_path / "hub", "shared-password", password=password) as hub:
        names = ["carol", "dave"]
        with hub.api() as s:
            for name in names:  # the lab's own load-test accounts
                assert s.post(f"{hub.url}/hub/api/users/{name}", timeout=30).status_code == 201
        users_file = tmp_path / "users.txt"
        users_file.write_text("# the lab's load-test accounts\n" + "\n".join(names) + "\n")
        out = tmp_path / "run"
        env = {**LOOPBACK, "LABCAP_HUB_TOKEN": "", "LABCAP_HUB_PASSWORD": password}
        args = [*_run_args(hub, out), "--login", "form", "--users-file", users_file]
        r = labcap(*args, env=env, timeout=400)
        users, notes = hub.user_names(), hub.token_notes()
    assert r.returncode == 0, r.stderr[-3000:]
    assert password not in r.stdout + r.stderr
    windows = pd.read_parquet(out / "windows.parquet")
    ok = windows.assign(ok=windows["requests"] - windows["failures"]).groupby("endpoint")["ok"]
    ok = ok.sum()
    for endpoint in ("hub.login", "hub.home", "hub.token", "hub.spawn_ready", "kernel.execute"):
        assert ok.get(endpoint, 0) > 0, (endpoint, ok.to_dict(), r.stderr[-2000:])
    assert "hub.user_create" not in ok.index
    assert users == {"alice", *names}  # only the named accounts were used
    assert not [n for name in names for n in notes[name] if n.startswith("labcap")], notes


def test_api_journey_goes_through_the_environments_proxy(hub, tmp_path):
    if not hub.authenticator.startswith("nullauthenticator"):
        pytest.skip("one hub is enough to show the proxy carries the journey")
    from tests.support.proxy import loopback_proxy

    out = tmp_path / "run"
    with loopback_proxy() as log:
        env = {
            "HTTP_PROXY": log.url,
            "http_proxy": log.url,
            "NO_PROXY": "",
            "no_proxy": "",
            "LABCAP_HUB_TOKEN": hub.admin_token,
        }
        r = labcap(*_run_args(hub, out, step="30s"), env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert log.saw(f"GET {hub.url}/hub/api/user HTTP/1.1")  # the token check
    assert log.saw(f"POST {hub.url}/hub/api/users/labcap-")  # the users the load made
    assert log.saw("/api/kernels HTTP/1.1")  # a user server, with the user's token
    port = hub.url.rsplit(":", 1)[1]
    assert log.saw(f"CONNECT 127.0.0.1:{port} ")  # the kernel websocket, tunnelled
    assert log.saw(f"DELETE {hub.url}/hub/api/users/labcap-")  # the users removed
    assert _labcap_users(hub) <= {"labcapper"}


def test_cleanup_hub_without_a_token_is_one_line_exit_2(tmp_path):
    r = labcap(
        "cleanup", "--hub", "http://127.0.0.1:9", "--runs-dir", tmp_path,
        env={"LABCAP_HUB_TOKEN": ""},
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--hub needs the hub's admin or service token" in lines[0]
