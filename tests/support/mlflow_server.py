"""A plain real MLflow tracking server on loopback: a sqlite backend store and a served
artifact store (``--serve-artifacts``: runs get ``mlflow-artifacts:/`` URIs, as the labs'
servers give them), both in directories the test names, so that a test can copy them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mlflow_auth import _port, mlflow_server_process


@contextlib.contextmanager
def running_mlflow(db: Path, artifacts: Path, timeout_s: float = 120) -> Iterator[str]:
    """The server's URL while the block runs (stopped afterwards, its files kept)."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow not installed (labcap[lab])")
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [
        "--backend-store-uri", f"sqlite:///{db}",
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    log_path = db.parent / f"{db.stem}-mlflow.log"
    with mlflow_server_process(
        args, _port(), dict(os.environ), log_path, timeout_s=timeout_s
    ) as url:
        yield url
