"""Three real reference labs side by side on their own loopback ports, shared by the module:
``old`` (seeded), ``faithful`` (the same content) and ``damaged`` (a missing run, a changed
metric, a missing file, and a user the hub refuses)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labcap.lab import LabEndpoints, ReferenceLab
from tests.support.lab import require_lab_stack
from tests.verify.seed import Damage, LabContent, seed_files, seed_mlflow

BLOCKED_USER = "labcap-verify-blocked"
CONTENT = LabContent()
DAMAGE = Damage(
    skip_runs=frozenset({"exp-1/run-2"}),
    metric_changes={"exp-0/run-1:acc": 0.99},
    skip_files=frozenset({"alice/project/file-2.txt"}),
)


@dataclass
class SeededLab:
    workdir: Path
    endpoints: LabEndpoints

    @property
    def home(self) -> Path:
        return self.workdir / "home"


@dataclass
class Labs:
    old: SeededLab
    faithful: SeededLab
    damaged: SeededLab


@pytest.fixture(scope="session")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labs]:
    require_lab_stack()
    started: list[ReferenceLab] = []
    try:
        seeded = {}
        for name, damage, blocked in (
            ("old", Damage(), ()),
            ("faithful", Damage(), ()),
            ("damaged", DAMAGE, (BLOCKED_USER,)),
        ):
            lab = ReferenceLab(tmp_path_factory.mktemp(f"verify-{name}"), blocked_users=blocked)
            started.append(lab)
            endpoints = lab.start()
            seed_mlflow(endpoints.mlflow_url, CONTENT, damage)
            seed_files(lab.workdir / "home", CONTENT, damage)
            seeded[name] = SeededLab(lab.workdir, endpoints)
        yield Labs(**seeded)
    finally:
        for lab in started:
            lab.stop()
