"""A plain real MLflow tracking server on loopback: a sqlite backend store and a served
artifact store (``--serve-artifacts``: runs get ``mlflow-artifacts:/`` URIs, as the labs'
servers give them), both in directories the test names, so that a test can copy them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.mlflow_auth import _die_with_parent, _port


@contextlib.contextmanager
def running_mlflow(db: Path, artifacts: Path, timeout_s: float = 120) -> Iterator[str]:
    """The server's URL while the block runs (stopped afterwards, its files kept)."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow not installed (labcap[lab])")
    artifacts.mkdir(parents=True, exist_ok=True)
    port = _port()
    mlflow = Path(sys.executable).parent / "mlflow"
    argv = [
        str(mlflow) if mlflow.is_file() else sys.executable,
        *([] if mlflow.is_file() else ["-m", "mlflow"]),
        "server", "--backend-store-uri", f"sqlite:///{db}",
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = dict(
        os.environ,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    log_path = db.parent / f"{db.stem}-mlflow.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv, cwd=db.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_die_with_parent)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise AssertionError(f"mlflow exited ({proc.returncode}): {tail}")
            with contextlib.suppress(requests.RequestException):
                s = requests.Session()
                s.trust_env = False
                if s.get(f"{url}/health", timeout=3).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"mlflow did not come up within {timeout_s:g} s")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
