"""MLflow credentials as MLflow's clients read them, checked against a real MLflow with its
basic-auth app: the load runs with the right ones; wrong or missing ones are one line,
exit 2, before any load."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pandas as pd
import pytest

from labcap.clients.mlflow import auth_headers
from tests.support.cli import labcap
from tests.support.mlflow_auth import AuthMLflow, running_auth_mlflow

LOOPBACK = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
NO_CREDENTIALS = {
    "MLFLOW_TRACKING_USERNAME": "",
    "MLFLOW_TRACKING_PASSWORD": "",
    "MLFLOW_TRACKING_TOKEN": "",
}


def test_credentials_follow_mlflow_conventions() -> None:
    basic = auth_headers({"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "pw"})
    assert basic == {"Authorization": "Basic YW5uOnB3"}  # base64("ann:pw")
    assert auth_headers({"MLFLOW_TRACKING_TOKEN": "tok"}) == {"Authorization": "Bearer tok"}
    both = {"MLFLOW_TRACKING_USERNAME": "a", "MLFLOW_TRACKING_PASSWORD": "b"}
    both["MLFLOW_TRACKING_TOKEN"] = "t"
    assert auth_headers(both)["Authorization"].startswith("Basic ")  # as MLflow's client
    assert auth_headers({}) == {}


@pytest.fixture(scope="module")
def mlflow_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthMLflow]:
    with running_auth_mlflow(tmp_path_factory.mktemp("mlflow-auth")) as server:
        yield server


def _args(url: str, out) -> list[object]:
    return [
        "run", "--host", url, "--scenario", "mlflow", "--users", "2", "--step-duration", "12s",
        "--settle", "3s", "--gpu", "none", "--no-calibrate", "--out", out, "--json",
    ]  # fmt: skip


def test_basic_auth_mlflow_is_load_tested_with_credentials(mlflow_auth, tmp_path) -> None:
    out = tmp_path / "run"
    env = {
        **LOOPBACK,
        **NO_CREDENTIALS,
        "MLFLOW_TRACKING_USERNAME": mlflow_auth.admin,
        "MLFLOW_TRACKING_PASSWORD": mlflow_auth.password,
    }
    r = labcap(*_args(mlflow_auth.url, out), env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert mlflow_auth.password not in r.stdout + r.stderr
    for f in out.iterdir():
        assert mlflow_auth.password.encode() not in f.read_bytes(), f
    windows = pd.read_parquet(out / "windows.parquet")
    by = windows.groupby("endpoint")[["requests", "failures"]].sum()
    assert by.loc["mlflow.log_batch", "requests"] > 0
    assert by["failures"].sum() == 0, by
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete", manifest["status_reasons"]


@pytest.mark.parametrize(
    ("creds", "expected"),
    [
        ({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong"}, "refused"),
        ({}, "asks for credentials"),
    ],
)
def test_wrong_or_missing_credentials_are_one_line_exit_2(mlflow_auth, tmp_path, creds, expected):
    out = tmp_path / "run"
    r = labcap(*_args(mlflow_auth.url, out), env={**LOOPBACK, **NO_CREDENTIALS, **creds})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "HTTP 401" in lines[0], r.stderr
    assert "wrong" not in r.stderr
    assert not out.exists()  # nothing ran, nothing written


def test_scenario_lab_without_mlflow_url_is_one_line_before_anything(tmp_path) -> None:
    out = tmp_path / "run"
    r = labcap("run", "--host", "http://127.0.0.1:9", "--scenario", "lab", "--out", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs --mlflow-url" in lines[0], r.stderr
    assert not out.exists()


def test_the_run_goes_through_the_environments_proxy(mlflow_auth, tmp_path) -> None:
    from tests.support.proxy import loopback_proxy

    out = tmp_path / "run"
    creds = {
        "MLFLOW_TRACKING_USERNAME": mlflow_auth.admin,
        "MLFLOW_TRACKING_PASSWORD": mlflow_auth.password,
    }
    with loopback_proxy() as log:
        env = {"HTTP_PROXY": log.url, "http_proxy": log.url, "NO_PROXY": "", "no_proxy": ""}
        r = labcap(*_args(mlflow_auth.url, out), env={**env, **creds}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    api = f"{mlflow_auth.url}/api/2.0/mlflow"
    assert log.saw(f"GET {api}/experiments/search?")  # the preflight's credential check
    assert log.saw(f"POST {api}/runs/log-batch HTTP/1.1")  # the load itself
    assert log.saw(f"GET {api}/metrics/get-history?")
    windows = pd.read_parquet(out / "windows.parquet")
    assert windows["failures"].sum() == 0  # every call made it through the proxy and back


def test_mlflow_behind_the_hubs_proxy_is_load_tested_at_its_path(tmp_path) -> None:
    from tests.support.hub import running_hub

    prefix = "/services/mlflow"
    with (
        running_auth_mlflow(tmp_path / "mlflow", static_prefix=prefix) as mlflow,
        running_hub(
            tmp_path / "hub",
            "nullauthenticator.NullAuthenticator",
            services=[{"name": "mlflow", "url": mlflow.url}],
        ) as hub,
    ):
        out = tmp_path / "run"
        creds = {
            "MLFLOW_TRACKING_USERNAME": mlflow.admin,
            "MLFLOW_TRACKING_PASSWORD": mlflow.password,
        }
        r = labcap(*_args(f"{hub.url}{prefix}", out), env={**LOOPBACK, **creds}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    windows = pd.read_parquet(out / "windows.parquet")
    by = windows.groupby("endpoint")[["requests", "failures"]].sum()
    assert by.loc["mlflow.log_batch", "requests"] > 0 and by["failures"].sum() == 0, by
