"""Fixtures for the embedded reference lab tests: one real lab shared by a module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from labcap.lab import LabEndpoints, ReferenceLab
from tests.support.lab import require_lab_stack


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
