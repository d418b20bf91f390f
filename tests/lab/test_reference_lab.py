"""One real lab (JupyterHub + proxy + MLflow) shared by this module; the last test stops it."""

from __future__ import annotations

import stat

import pytest

from labcap.errors import LabcapError
from labcap.lab import ReferenceLab, lab_status
from labcap.lab._state import state_path
from tests.lab._hub_client import (
    direct_session,
    hub_login,
    process_tree,
    spawn_and_wait_ready,
    still_running,
)

pytestmark = pytest.mark.lab


def test_both_services_answer_on_loopback(started_lab):
    endpoints = started_lab.endpoints
    session = direct_session()
    assert endpoints.hub_url.startswith("http://127.0.0.1:")
    assert endpoints.mlflow_url.startswith("http://127.0.0.1:")
    assert session.get(f"{endpoints.hub_url}/hub/api", timeout=10).status_code == 200
    assert session.get(f"{endpoints.mlflow_url}/health", timeout=10).status_code == 200
    ready_lines = [line for line in started_lab.progress if " ready on " in line]
    assert len(ready_lines) == 2


def test_login_needs_the_generated_password(started_lab):
    endpoints = started_lab.endpoints
    good = hub_login(endpoints.hub_url, "alice", endpoints.hub_password)
    assert good.status_code == 302
    assert good.headers["Location"].startswith("/hub/")
    bad = hub_login(endpoints.hub_url, "mallory", endpoints.hub_password + "x")
    assert bad.status_code == 403


def test_secrets_stay_out_of_logs_config_and_repr(started_lab):
    endpoints, workdir = started_lab.endpoints, started_lab.lab.workdir
    hub_login(endpoints.hub_url, "alice", endpoints.hub_password)  # a login is in the log too
    files = [*sorted((workdir / "logs").glob("*.log")), workdir / "jupyterhub_config.py"]
    assert len(files) == 3
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert endpoints.hub_password not in text, path
        assert endpoints.api_token not in text, path
    for shown in (repr(endpoints), str(endpoints.redacted()), str(lab_status(workdir))):
        assert endpoints.hub_password not in shown
        assert endpoints.api_token not in shown
    assert stat.S_IMODE(state_path(workdir).stat().st_mode) == 0o600


def test_status_reports_the_running_lab(started_lab):
    status = lab_status(started_lab.lab.workdir)
    assert status is not None
    assert status["running"] and not status["detached"]
    assert status["endpoints"]["hub_url"] == started_lab.endpoints.hub_url
    assert {name for name, s in status["services"].items() if s["alive"]} == {
        "jupyterhub",
        "mlflow",
    }


def test_second_lab_in_the_same_workdir_is_refused(started_lab):
    with pytest.raises(LabcapError, match="already running"):
        ReferenceLab(started_lab.lab.workdir).start()
    assert lab_status(started_lab.lab.workdir)["running"]


def test_spawned_server_becomes_ready_and_stop_leaves_no_process(started_lab):
    lab, endpoints = started_lab.lab, started_lab.endpoints
    spawn_and_wait_ready(endpoints, "carol")
    status = lab_status(lab.workdir)
    assert status is not None
    tree = process_tree([s["pid"] for s in status["services"].values()])
    cmdlines = [" ".join(p.cmdline()) for p in tree]
    assert any("jupyterhub-singleuser" in c for c in cmdlines), cmdlines
    assert any("configurable-http-proxy" in c for c in cmdlines), cmdlines

    lab.stop()

    assert still_running(tree) == []
    assert not state_path(lab.workdir).exists()
    assert lab_status(lab.workdir) is None
    lab.stop()  # idempotent
