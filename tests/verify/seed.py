"""Seed a real reference lab with deterministic MLflow data and home files, optionally damaged.

Two labs seeded with the same ``LabContent`` hold the same data (a faithful copy, with new
run ids, as a copy through the API makes); ``Damage`` leaves something out or changes it.
MLflow data goes in through its REST API; artifacts are written to each run's artifact
directory, which the reference lab keeps on the local disk; home files are plain files.
Also used by bench/verify_scale.py.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

T0_MS = 1_767_225_600_000  # 2026-01-01, so start times are the same on both sides


@dataclass(frozen=True)
class LabContent:
    experiments: int = 2
    runs_per_experiment: int = 3
    metric_points: int = 3
    artifacts_per_run: int = 2
    users: tuple[str, ...] = ("alice", "bob")
    files_per_user: int = 6
    file_bytes: int = 0  # 0: a few hundred bytes each; else up to this many (varied)


@dataclass(frozen=True)
class Damage:
    skip_runs: frozenset[str] = frozenset()  # "exp-1/run-2"
    metric_changes: dict[str, float] = field(default_factory=dict)  # "exp-0/run-1:acc" -> value
    skip_files: frozenset[str] = frozenset()  # "alice/project/file-3.txt"


def experiment_name(i: int) -> str:
    return f"exp-{i}"


def file_paths(content: LabContent) -> list[str]:
    return [
        f"{user}/project/{f'sub-{j % 3}/' if j % 2 else ''}file-{j}.txt"
        for user in content.users
        for j in range(content.files_per_user)
    ]


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def _post(s: requests.Session, url: str, path: str, body: dict) -> dict:
    r = s.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=60)
    r.raise_for_status()
    return r.json()


def seed_mlflow(url: str, content: LabContent, damage: Damage = Damage(), workers: int = 8) -> int:
    """Create the experiments and runs; returns how many runs were created."""
    s = _session()
    jobs = []
    for e in range(content.experiments):
        name = experiment_name(e)
        exp_id = _post(
            s,
            url,
            "experiments/create",
            {
                "name": name,
                "tags": [{"key": "team", "value": f"team-{e % 2}"}],
            },
        )["experiment_id"]
        for r in range(content.runs_per_experiment):
            if f"{name}/run-{r}" not in damage.skip_runs:
                jobs.append((exp_id, name, e, r))

    def one(job: tuple[str, str, int, int]) -> None:
        exp_id, name, e, r = job
        sess = _local_session()
        start = T0_MS + (e * 10_000 + r) * 1000
        run = _post(
            sess,
            url,
            "runs/create",
            {
                "experiment_id": exp_id,
                "run_name": f"run-{r}",
                "start_time": start,
                "user_id": "alice",
                "tags": [{"key": "purpose", "value": "verify-test"}],
            },
        )["run"]
        run_id = run["info"]["run_id"]
        metrics = [
            {"key": "loss", "value": 1.0 / (p + 1 + r), "timestamp": start + p, "step": p}
            for p in range(content.metric_points)
        ]
        acc = damage.metric_changes.get(f"{name}/run-{r}:acc", 0.5 + r / 100)
        metrics.append({"key": "acc", "value": acc, "timestamp": start, "step": 0})
        _post(
            sess,
            url,
            "runs/log-batch",
            {
                "run_id": run_id,
                "metrics": metrics,
                "params": [
                    {"key": "lr", "value": str(0.001 * (r + 1))},
                    {"key": "batch", "value": str(32 * (e + 1))},
                ],
                "tags": [{"key": "seed", "value": str(r)}],
            },
        )
        _post(
            sess,
            url,
            "runs/update",
            {"run_id": run_id, "status": "FINISHED", "end_time": start + 60_000},
        )
        artifact_dir = Path(urlparse(run["info"]["artifact_uri"]).path)
        for a in range(content.artifacts_per_run):
            target = artifact_dir / ("model" if a % 2 else "") / f"artifact-{a}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{name}/run-{r} artifact {a}\n" * (a + 1))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, jobs))
    return len(jobs)


_sessions: dict[int, requests.Session] = {}


def _local_session() -> requests.Session:
    import threading

    key = threading.get_ident()
    if key not in _sessions:
        _sessions[key] = _session()
    return _sessions[key]


def seed_files(home: Path, content: LabContent, damage: Damage = Damage()) -> int:
    """Write the users' files under ``home``; returns how many were written."""
    n = 0
    for rel in file_paths(content):
        if rel in damage.skip_files:
            continue
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(rel.encode()).hexdigest()
        text = f"{rel}\n{digest}\n" * (1 + len(rel) % 5)
        if content.file_bytes:
            size = 1 + int(digest[:8], 16) % content.file_bytes
            text = (text * (size // len(text) + 1))[:size]
        path.write_text(text)
        n += 1
    return n
