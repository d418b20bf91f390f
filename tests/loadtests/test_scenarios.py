"""The built-in lab scenarios: their Locust-free helpers here, the journeys against a real lab.

Locust is never imported in this process (it monkey-patches everything with
gevent); the journeys run in ``_drive_scenario.py`` as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from labcap.loadtests.catalog import SCENARIOS
from labcap.loadtests.scenarios.common import unique_name
from labcap.loadtests.scenarios.kernel_ws import (
    execute_request,
    is_reply_to,
    kernel_channels_url,
)
from labcap.redact import REDACTED, redact

DRIVER = Path(__file__).with_name("_drive_scenario.py")
HUB_NAMES = (
    "hub.login_page",
    "hub.login",
    "hub.home",
    "hub.token",
    "hub.spawn",
    "hub.spawn_ready",
    "kernel.start",
    "kernel.execute",
    "kernel.stop",
    "hub.stop",
)
MLFLOW_NAMES = (
    "mlflow.create_experiment",
    "mlflow.create_run",
    "mlflow.log_batch",
    "mlflow.search_runs",
    "mlflow.metric_history",
)


def _child_env(password: str) -> dict[str, str]:
    env = dict(os.environ, LABCAP_HUB_PASSWORD=password)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


# -- no lab, no Locust ---------------------------------------------------------


def test_helpers_load_without_locust() -> None:
    code = (
        "import sys, labcap.loadtests.scenarios.common, labcap.loadtests.scenarios.kernel_ws;"
        "print('locust' in sys.modules or 'gevent' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


def test_unique_names_are_distinct_and_lowercase() -> None:
    names = {unique_name("LabCap") for _ in range(500)}
    assert len(names) == 500
    assert all(n.startswith("labcap-") and n == n.lower() for n in names)


def test_unique_names_differ_between_processes() -> None:
    code = "from labcap.loadtests.scenarios.common import unique_name; print(unique_name('x'))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        for _ in range(3)
    }
    assert len(seen) == 3


def test_redact_hides_secrets_and_token_looking_values() -> None:
    text = redact(
        "login as u with hunter2-password, Authorization: token abcdef0123456789xyz",
        ["hunter2-password"],
    )
    assert "hunter2-password" not in text
    assert "abcdef0123456789xyz" not in text
    assert REDACTED in text
    assert len(redact("x" * 1000, [])) <= 300


def test_execute_request_follows_protocol_5_3() -> None:
    msg = execute_request("sum(range(1000))", "sess-1")
    assert msg["header"]["msg_type"] == "execute_request"
    assert msg["header"]["version"] == "5.3"
    assert msg["header"]["session"] == "sess-1"
    assert msg["channel"] == "shell"
    assert msg["content"]["code"] == "sum(range(1000))"
    reply = {
        "channel": "shell",
        "msg_type": "execute_reply",
        "parent_header": {"msg_id": msg["header"]["msg_id"]},
    }
    assert is_reply_to(reply, msg["header"]["msg_id"])
    assert not is_reply_to({**reply, "channel": "iopub"}, msg["header"]["msg_id"])
    assert not is_reply_to(reply, "some-other-id")


def test_kernel_channels_url() -> None:
    url = kernel_channels_url("http://127.0.0.1:8000/", "/user/u/api/kernels/k/channels", "s1")
    assert url == "ws://127.0.0.1:8000/user/u/api/kernels/k/channels?session_id=s1"
    assert kernel_channels_url("https://h/base", "x", "s").startswith("wss://h/base/x?")


def test_catalog_classes_fit_the_engine_contract() -> None:
    """Each catalog class exists, is concrete, and declares target/defaults (checked in a child)."""
    code = """
import json, sys
from labcap.loadtests.catalog import SCENARIOS
from labcap.loadtests.engine import load_user_classes
out = {}
for s in SCENARIOS.values():
    classes = load_user_classes({
        "scenario": {"module": s.module, "classes": [list(c) for c in s.classes]},
        "hosts": {"jupyterhub": "http://127.0.0.1:1", "mlflow": "http://127.0.0.1:2"},
    })
    out[s.name] = [
        {"name": c.__name__, "target": c.target, "host": c.host, "abstract": c.abstract,
         "base_host": c.__mro__[1].host, "prefix": c.username_prefix,
         "password": c.lab_password, "wait": [c.wait_time(None) for _ in range(50)]}
        for c in classes
    ]
json.dump(out, sys.stdout)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=_child_env("pw-from-env"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    described = json.loads(proc.stdout)
    ports = {"jupyterhub": "http://127.0.0.1:1", "mlflow": "http://127.0.0.1:2"}
    for name, info in SCENARIOS.items():
        classes = described[name]
        assert [c["name"] for c in classes] == [c for c, _ in info.classes]
        for c in classes:
            assert c["target"] in info.needs
            assert c["host"] == ports[c["target"]]
            assert c["base_host"] is None and c["abstract"] is False
            assert c["prefix"] == "labcap" and c["password"] == "pw-from-env"
            assert all(1 <= w <= 3 for w in c["wait"]) and len(set(c["wait"])) > 1


# -- against the real reference lab ----------------------------------------------


@pytest.fixture
def lab(reference_lab: Any) -> Any:
    """The session's reference lab (tests/conftest.py): the journeys only need it running.

    Servers an earlier test left running are stopped first, so that each journey's own
    cleanup is what the tests check.
    """
    from tests.support.lab import stop_single_user_servers  # the lab's imports, only here

    stop_single_user_servers(reference_lab)
    return reference_lab


def drive(
    scenario: str,
    hosts: dict[str, str],
    password: str,
    users: int,
    run_s: float,
    stop_timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Run ``_drive_scenario.py`` (bounded) and return its JSON; raw stdout under ``_raw``."""
    argv = [sys.executable, str(DRIVER), "--scenario", scenario]
    for target, url in hosts.items():
        argv += ["--host", f"{target}={url}"]
    argv += ["--users", str(users), "--spawn-rate", "10", "--run-s", str(run_s)]
    argv += ["--stop-timeout-s", str(stop_timeout_s)]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=run_s + stop_timeout_s + 120,
        env=_child_env(password),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    result["_raw"] = proc.stdout + proc.stderr
    return result


def assert_clean(result: dict[str, Any], names: tuple[str, ...]) -> None:
    entries = result["entries"]
    for name in names:
        assert name in entries, f"{name} never reported; saw {sorted(entries)}"
        assert entries[name]["num_requests"] > 0, name
    failed = {n: e["num_failures"] for n, e in entries.items() if e["num_failures"]}
    assert not failed, (failed, result["errors"])
    assert result["user_errors"] == []


def running_servers(endpoints: Any) -> dict[str, dict[str, Any]]:
    """``user -> server model`` for every user whose default server is listed by the hub."""
    session = requests.Session()
    session.trust_env = False
    r = session.get(
        f"{endpoints.hub_url}/hub/api/users",
        headers={"Authorization": f"token {endpoints.api_token}"},
        params={"limit": 1000},
        timeout=30,
    )
    r.raise_for_status()
    return {u["name"]: u["servers"][""] for u in r.json() if u.get("servers", {}).get("")}


@pytest.mark.lab
def test_jupyterhub_journey_runs_clean_and_leaves_no_server(lab: Any) -> None:
    result = drive("jupyterhub", {"jupyterhub": lab.hub_url}, lab.hub_password, users=2, run_s=20)
    assert_clean(result, HUB_NAMES)
    entries = result["entries"]
    assert entries["hub.spawn_ready"]["request_type"] == "SPAWN"
    assert entries["kernel.execute"]["request_type"] == "WS"
    assert lab.hub_password not in result["_raw"]
    assert running_servers(lab) == {}


@pytest.mark.lab
def test_mlflow_journey_runs_clean(lab: Any) -> None:
    result = drive("mlflow", {"mlflow": lab.mlflow_url}, "", users=3, run_s=15)
    assert_clean(result, MLFLOW_NAMES)


@pytest.mark.lab
def test_wrong_password_fails_login_with_a_safe_reason(lab: Any) -> None:
    wrong = "not-the-password-" + lab.hub_password[:4][::-1] + "zz"
    result = drive("jupyterhub", {"jupyterhub": lab.hub_url}, wrong, users=2, run_s=5)
    login = result["entries"]["hub.login"]
    assert login["num_failures"] == login["num_requests"] > 0
    reasons = [e["error"] for e in result["errors"] if e["name"] == "hub.login"]
    assert reasons and all("403" in r for r in reasons)
    assert wrong not in result["_raw"]
    assert "hub.spawn" not in result["entries"]  # nothing past a failed login
    assert running_servers(lab) == {}


@pytest.mark.lab
def test_mixed_lab_scenario_runs_both_journeys(lab: Any) -> None:
    hosts = {"jupyterhub": lab.hub_url, "mlflow": lab.mlflow_url}
    result = drive("lab", hosts, lab.hub_password, users=3, run_s=15)
    assert_clean(result, HUB_NAMES + MLFLOW_NAMES)
    assert running_servers(lab) == {}


def test_account_pool_hands_each_name_to_one_user_at_a_time(tmp_path) -> None:
    from labcap.loadtests.scenarios.common import AccountPool, read_accounts

    users = tmp_path / "users.txt"
    users.write_text("# load-test accounts\nload-1\n\nload-2  # approved\nload-1\n")
    assert read_accounts(str(users)) == ("load-1", "load-2", "load-1")
    pool = AccountPool(read_accounts(str(users)))
    assert pool.size == 2
    assert [pool.take(), pool.take(), pool.take()] == ["load-1", "load-2", None]
    pool.give_back("load-2")
    pool.give_back("load-2")
    assert [pool.take(), pool.take()] == ["load-2", None]


def test_the_engine_gives_hub_users_the_accounts_file(tmp_path) -> None:
    """$LABCAP_HUB_USERS_FILE reaches the JupyterHub journey only (MLflow users need none)."""
    users = tmp_path / "users.txt"
    users.write_text("load-1\nload-2\n")
    code = """
import json, sys
from labcap.loadtests.catalog import SCENARIOS
from labcap.loadtests.engine import load_user_classes
s = SCENARIOS["lab"]
classes = load_user_classes({
    "scenario": {"module": s.module, "classes": [list(c) for c in s.classes]},
    "hosts": {"jupyterhub": "http://127.0.0.1:1", "mlflow": "http://127.0.0.1:2"},
})
out = {}
for c in classes:
    pool = getattr(c, "account_pool", None)
    out[c.__name__] = None if pool is None else [pool.take() for _ in range(3)]
json.dump(out, sys.stdout)
"""
    env = {**_child_env("pw"), "LABCAP_HUB_USERS_FILE": str(users)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {
        "JupyterHubUser": ["load-1", "load-2", None],
        "MLflowUser": None,
    }
