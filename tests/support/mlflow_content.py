"""MLflow content that a migration must carry over, written through a real tracking server's
REST API: experiments with tags, runs with params, tags, metric histories and a final metric,
artifacts uploaded through the server (``--serve-artifacts``: ``mlflow-artifacts:/`` URIs), and a
registered model with versions, tags, a description and an alias. Used by the migration
rehearsal (tests/k8s) and the verify tests of histories and the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

EXPERIMENTS = ("rehearsal-vision", "rehearsal-nlp")
RUNS_PER_EXPERIMENT = 2
HISTORY_STEPS = 5  # points of each run's "loss" history
MODEL = "rehearsal-classifier"


def _mlflow(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{base}/api/2.0/mlflow/{path}", json=body, timeout=30)
    assert r.status_code == 200, f"{path}: HTTP {r.status_code} {r.text[:300]}"
    return r.json()


def _put_artifact(base: str, artifact_uri: str, rel: str, data: bytes) -> None:
    """An artifact uploaded through the tracking server (--serve-artifacts), as the MLflow
    client does for an ``mlflow-artifacts:/`` URI."""
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    path = artifact_uri.removeprefix("mlflow-artifacts:/").lstrip("/")
    r = requests.put(f"{base}/api/2.0/mlflow-artifacts/artifacts/{path}/{rel}", data=data,
                     timeout=30)  # fmt: skip
    assert r.status_code == 200, f"artifact {rel}: HTTP {r.status_code} {r.text[:300]}"


@dataclass
class Seeded:
    runs: dict[str, str]  # "experiment/run-N" -> run id
    artifacts: dict[str, list[str]]  # run id -> artifact paths
    model_versions: int


def seed_mlflow(base: str) -> Seeded:
    """Experiments (with tags), runs (params, tags, a metric history of HISTORY_STEPS points and
    a final metric), artifacts (one in a directory), and a registered model with a version per
    experiment, tags, a description and an alias."""
    runs: dict[str, str] = {}
    artifacts: dict[str, list[str]] = {}
    versions = 0
    _mlflow(base, "registered-models/create", {
        "name": MODEL, "description": "the rehearsal's model",
        "tags": [{"key": "owner", "value": "alice"}],
    })  # fmt: skip
    t0 = 1_767_225_600_000
    for e, name in enumerate(EXPERIMENTS):
        exp = _mlflow(base, "experiments/create",
                      {"name": name, "tags": [{"key": "team", "value": f"team-{e}"}]})  # fmt: skip
        for r in range(RUNS_PER_EXPERIMENT):
            start = t0 + (e * 100 + r) * 60_000
            run = _mlflow(base, "runs/create", {
                "experiment_id": exp["experiment_id"], "run_name": f"run-{r}",
                "start_time": start, "user_id": "alice" if r == 0 else "bob",
            })["run"]["info"]  # fmt: skip
            run_id = run["run_id"]
            metrics = [
                {"key": "loss", "value": 1.0 / (s + 1 + r), "timestamp": start + s * 1000,
                 "step": s}
                for s in range(HISTORY_STEPS)
            ]  # fmt: skip
            metrics.append({"key": "accuracy", "value": 0.8 + r / 100 + e / 10,
                            "timestamp": start + 9000, "step": 0})  # fmt: skip
            _mlflow(base, "runs/log-batch", {
                "run_id": run_id, "metrics": metrics,
                "params": [{"key": "lr", "value": str(0.01 * (r + 1))},
                           {"key": "epochs", "value": str(HISTORY_STEPS)}],
                "tags": [{"key": "stage", "value": "rehearsal"}],
            })  # fmt: skip
            paths = ["summary.txt", "model/weights.bin"]
            _put_artifact(base, run["artifact_uri"], paths[0], f"{name}/run-{r}\n".encode())
            _put_artifact(base, run["artifact_uri"], paths[1], bytes(range(256)) * (4 + r))
            done = {"run_id": run_id, "status": "FINISHED", "end_time": start + 30_000}
            _mlflow(base, "runs/update", done)
            runs[f"{name}/run-{r}"] = run_id
            artifacts[run_id] = paths
            if r == 0:
                mv = _mlflow(base, "model-versions/create", {
                    "name": MODEL, "source": f"{run['artifact_uri']}/model", "run_id": run_id,
                    "description": f"from {name}", "tags": [{"key": "data", "value": name}],
                })["model_version"]  # fmt: skip
                versions += 1
                if e == 0:
                    alias = {"name": MODEL, "alias": "champion", "version": mv["version"]}
                    _mlflow(base, "registered-models/alias", alias)
    return Seeded(runs, artifacts, versions)
