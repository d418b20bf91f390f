"""Code the end-to-end tests run in a user's kernel, in the Compose lab and the K3s lab alike."""

# MLflow's REST API through $MLFLOW_TRACKING_URI (the notebook stand-in has no mlflow
# package): an experiment named EXPERIMENT (replace it), a run with a metric and an artifact
# uploaded through the server; prints the tracking URI and the run id
MLFLOW_CELL = """
import json, os, urllib.request
base = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
def call(method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    kind = "application/octet-stream" if raw is not None else "application/json"
    req.add_header("Content-Type", kind)
    with urllib.request.urlopen(req, timeout=20) as r:
        text = r.read().decode()
        return json.loads(text) if text.strip() else {}
exp = call("POST", "/api/2.0/mlflow/experiments/create", {"name": "EXPERIMENT"})["experiment_id"]
run = call("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp})["run"]["info"]
call("POST", "/api/2.0/mlflow/runs/log-metric",
     {"run_id": run["run_id"], "key": "accuracy", "value": 0.93, "timestamp": 0, "step": 0})
assert run["artifact_uri"].startswith("mlflow-artifacts:/"), run["artifact_uri"]
path = run["artifact_uri"].removeprefix("mlflow-artifacts:/").lstrip("/")
call("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{path}/model.txt", raw=b"weights 42")
call("POST", "/api/2.0/mlflow/runs/update", {"run_id": run["run_id"], "status": "FINISHED"})
print(base, run["run_id"])
"""
