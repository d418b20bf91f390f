"""verify's MLflow comparison beyond the latest values, on real tracking servers: every point
of every metric's history, every artifact file's sha256 (downloaded through the server), and
the model registry (models, versions, tags, aliases).

One server is seeded through its REST API (tests/support/mlflow_content.py); a second one
serves a file copy of its database and artifact store (what a dump/restore gives: the same
ids). The copy verifies clean; then it is damaged under its server, one thing of each kind,
and each is named: a history point, an artifact's bytes (same size), a model alias and a
model version's tag.
"""

from __future__ import annotations

import shutil
import sqlite3

import requests

from labcap.verify.mlflow_data import MlflowReader, compare_mlflow
from tests.support.mlflow_content import EXPERIMENTS, HISTORY_STEPS, MODEL, seed_mlflow
from tests.support.mlflow_server import running_mlflow


def _snapshot(url: str, checksums: bool = True):
    snap = MlflowReader(url, artifact_source="api", artifact_checksums=checksums).snapshot(
        print, url
    )
    assert snap.errors == [], snap.errors
    return snap


def test_histories_artifact_checksums_and_registry_are_compared(tmp_path):
    old_db, old_store = tmp_path / "old.db", tmp_path / "old-artifacts"
    new_db, new_store = tmp_path / "new.db", tmp_path / "new-artifacts"
    with running_mlflow(old_db, old_store) as old_url:
        seeded = seed_mlflow(old_url)
        shutil.copy(old_db, new_db)  # the server is idle: a consistent copy, as a dump gives
        shutil.copytree(old_store, new_store)
        with running_mlflow(new_db, new_store) as url:
            _damage_and_compare(old_url, url, seeded, new_db, new_store)


def _damage_and_compare(old_url, url, seeded, new_db, new_store):
    old = _snapshot(old_url)
    diffs, details = compare_mlflow(old, _snapshot(url))
    assert diffs == []
    assert details["matched_runs_by"] == "run id"
    n_runs = len(seeded.runs)
    assert details["metric_points"]["new"] == n_runs * (HISTORY_STEPS + 1)
    assert details["artifacts_hashed"] == {"old": 2 * n_runs, "new": 2 * n_runs}
    assert details["registered_models"] == {"old": 1, "new": 1}
    assert details["model_versions"] == {"old": len(EXPERIMENTS), "new": len(EXPERIMENTS)}

    run_id = seeded.runs[f"{EXPERIMENTS[1]}/run-1"]
    # a history point changed; the latest value (the last step) stays the same
    with sqlite3.connect(new_db) as db:
        changed = db.execute(
            "UPDATE metrics SET value = 42.0 WHERE run_uuid = ? AND key = 'loss' AND step = 1",
            (run_id,),
        ).rowcount
    assert changed == 1
    # an artifact's bytes changed, its size not
    (weights,) = [p for p in new_store.rglob("weights.bin") if run_id in p.parts]
    data = bytearray(weights.read_bytes())
    data[3] ^= 0xFF
    weights.write_bytes(bytes(data))
    # the registry: the alias gone, a version's tag changed
    r = requests.delete(f"{url}/api/2.0/mlflow/registered-models/alias",
                        json={"name": MODEL, "alias": "champion"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    r = requests.post(f"{url}/api/2.0/mlflow/model-versions/set-tag",
                      json={"name": MODEL, "version": "2", "key": "data", "value": "other"},
                      timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text

    diffs, _ = compare_mlflow(old, _snapshot(url))
    found = sorted((d.kind, d.subject) for d in diffs)
    run_label = f"run {EXPERIMENTS[1]}/run-1 ({run_id})"
    assert found == [
        ("changed-artifact", f"{run_label} artifact model/weights.bin"),
        ("changed-metric-history", f"{run_label} metric-history loss"),
        ("changed-model-version", f"registered model {MODEL} version 2 model-version tags"),
        ("missing-model-alias", f"registered model {MODEL} model-alias champion"),
    ], found
    artifact = next(d for d in diffs if d.kind == "changed-artifact")
    assert artifact.old[:2] == artifact.new[:2]  # same kind and size: only the sha256 differs
    assert artifact.old[2] != artifact.new[2]
    # without checksums the changed bytes go unseen: only the history and registry remain
    plain, _ = compare_mlflow(_snapshot(old_url, False), _snapshot(url, False))
    assert sorted(d.kind for d in plain) == [
        "changed-metric-history", "changed-model-version", "missing-model-alias",
    ]  # fmt: skip
