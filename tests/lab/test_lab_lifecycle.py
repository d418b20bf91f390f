"""Lab lifecycles across processes: detached + lab_down, SIGTERM, and start-up failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from labcap.errors import LabcapError, RunFailedError
from labcap.lab import ReferenceLab, lab_down, lab_status
from labcap.lab._reference import find_chp
from labcap.lab._state import read_state, state_path, write_state
from tests.lab._hub_client import process_tree, still_running, wait_until_gone
from tests.lab.conftest import require_lab_stack

_START_TIMEOUT_S = 150


def _python(script: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@pytest.mark.lab
def test_detached_lab_outlives_its_starter_until_lab_down(tmp_path):
    require_lab_stack()
    starter = _python(
        f"""
        from pathlib import Path
        from labcap.lab import ReferenceLab
        ReferenceLab(Path({str(tmp_path)!r}), detach=True).start()
        """
    )
    try:
        output, _ = starter.communicate(timeout=_START_TIMEOUT_S)
        assert starter.returncode == 0, output
        status = lab_status(tmp_path)
        assert status is not None and status["detached"], status
        assert all(s["alive"] for s in status["services"].values()), status
        tree = process_tree([s["pid"] for s in status["services"].values()])
        assert len(tree) >= 4  # hub, its proxy, mlflow's cli and its uvicorn
    finally:
        stopped = lab_down(tmp_path)  # also when an assertion above failed

    assert stopped is True
    assert still_running(tree) == []
    assert lab_status(tmp_path) is None
    assert lab_down(tmp_path) is False


@pytest.mark.lab
def test_sigterm_stops_a_foreground_lab_and_all_its_processes(tmp_path):
    require_lab_stack()
    ready_flag = tmp_path / "ready"
    owner = _python(
        f"""
        import time
        from pathlib import Path
        from labcap.lab import ReferenceLab, install_sigterm_handler
        install_sigterm_handler()
        with ReferenceLab(Path({str(tmp_path / "lab")!r}), services=("jupyterhub",)):
            Path({str(ready_flag)!r}).touch()
            time.sleep(300)
        """
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not ready_flag.exists():
        assert owner.poll() is None, owner.communicate()[0]
        assert time.monotonic() < deadline, "lab did not start"
        time.sleep(0.2)
    tree = process_tree([owner.pid])
    assert len(tree) >= 3  # owner, hub, proxy

    owner.send_signal(signal.SIGTERM)
    output, _ = owner.communicate(timeout=30)

    assert owner.returncode == 128 + signal.SIGTERM, output
    assert wait_until_gone(tree, timeout_s=5) == []
    assert not state_path(tmp_path / "lab").exists()


@pytest.mark.lab
def test_hub_that_cannot_start_fails_with_its_log_tail(tmp_path, monkeypatch):
    require_lab_stack()
    broken_proxy = tmp_path / "broken-chp"
    broken_proxy.write_text("#!/bin/sh\necho 'proxy refuses to start' >&2\nexit 3\n")
    broken_proxy.chmod(0o755)
    monkeypatch.setenv("LABCAP_CHP", str(broken_proxy))
    lab = ReferenceLab(tmp_path / "lab", services=("jupyterhub",))

    with pytest.raises(RunFailedError) as failure:
        lab.start(timeout_s=60)

    message = str(failure.value)
    assert "\n" not in message
    assert "jupyterhub" in message
    assert str(tmp_path / "lab" / "logs" / "jupyterhub.log") in message
    assert lab_status(tmp_path / "lab") is None


def test_missing_proxy_is_one_line_that_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LABCAP_CHP", str(tmp_path / "no-such-chp"))
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(LabcapError) as explicit:
        find_chp()
    with pytest.raises(LabcapError) as nowhere:
        find_chp(env={"PATH": str(tmp_path)}, prefix=str(tmp_path))

    for message in (str(explicit.value), str(nowhere.value)):
        assert "npm install" in message and "configurable-http-proxy" in message
        assert "\n" not in message


def test_start_without_proxy_fails_before_starting_anything(tmp_path, monkeypatch):
    if any(
        __import__("importlib").util.find_spec(m) is None for m in ("jupyterhub", "jupyter_server")
    ):
        pytest.skip("labcap[lab] not installed")
    monkeypatch.setenv("LABCAP_CHP", str(tmp_path / "no-such-chp"))
    monkeypatch.setenv("PATH", str(tmp_path))
    lab = ReferenceLab(tmp_path / "lab")

    with pytest.raises(LabcapError, match="npm install"):
        lab.start()

    assert not state_path(tmp_path / "lab").exists()
    assert not (tmp_path / "lab" / "jupyterhub_config.py").exists()


def test_unknown_service_lists_the_valid_ones(tmp_path):
    with pytest.raises(LabcapError, match="valid: jupyterhub, mlflow"):
        ReferenceLab(tmp_path, services=("jupyterhub", "grafana"))


def test_state_file_from_a_newer_labcap_is_refused(tmp_path):
    write_state(tmp_path, {"services": []})
    raw = state_path(tmp_path).read_text().replace('"schema_version": 1', '"schema_version": 2')
    state_path(tmp_path).write_text(raw)

    with pytest.raises(LabcapError, match="schema_version 2"):
        read_state(tmp_path)


def test_state_file_is_private(tmp_path):
    write_state(tmp_path, {"services": []})

    assert os.stat(state_path(tmp_path)).st_mode & 0o777 == 0o600
    assert read_state(tmp_path) == {"schema_version": 1, "services": []}
