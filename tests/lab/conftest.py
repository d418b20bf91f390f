"""Fixtures for the embedded reference lab tests: one real lab shared by a module."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from labcap.errors import LabcapError
from labcap.lab import LabEndpoints, ReferenceLab
from labcap.lab._reference import find_chp


def require_lab_stack() -> None:
    """Skip (not fail) where the `lab` extra or configurable-http-proxy is not installed."""
    for module in ("jupyterhub", "jupyter_server", "mlflow"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (labcap[lab])")
    try:
        find_chp()
    except LabcapError as exc:
        pytest.skip(str(exc))


@dataclass
class StartedLab:
    lab: ReferenceLab
    endpoints: LabEndpoints
    progress: list[str]


@pytest.fixture(scope="module")
def started_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedLab]:
    require_lab_stack()
    progress: list[str] = []
    lab = ReferenceLab(tmp_path_factory.mktemp("lab"), progress=progress.append)
    endpoints = lab.start()
    try:
        yield StartedLab(lab, endpoints, progress)
    finally:
        lab.stop()
