"""Load generation in a cluster: a Locust master Deployment + Service and a worker Deployment.

``labcap profile RUN --platform k3s --loadgen k8s`` writes ``loadgen/*.yaml`` beside the
profile: when one machine cannot generate the load (``labcap calibrate``'s ceiling,
or workers over ~80 % of a core), Locust's own master/worker mode spreads it over Pods.
The workers are sized from the run: requests per user per second (measured) times the
expected users, over 70 % of one generator core's ceiling (calibration).

The Pods run the labcap image (Dockerfile.loadgen: labcap installed, so the built-in
scenarios import) with ``locust`` itself, headless; manifests are validated against the
Kubernetes schemas (kubernetes-validate, strict) before anything is written.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from labcap import __version__
from labcap.deploy_profiles import validate as v
from labcap.errors import LabcapError
from labcap.model import Manifest

NAMESPACE = "labcap-loadgen"
MASTER_PORT = 5557
UI_PORT = 8089
TARGET_CPU_SHARE = 0.7  # of a worker's core, leaving room below the 80 % warning
DEFAULT_RPS_PER_CORE = 700.0  # HttpUser on a small core, when the run was not calibrated

SCENARIO_IMPORTS = {
    "mlflow": "from labcap.loadtests.scenarios.mlflow import MLflowUser  # noqa: F401",
    "jupyterhub": "from labcap.loadtests.scenarios.jupyterhub import JupyterHubUser  # noqa: F401",
    "lab": "from labcap.loadtests.scenarios.lab import *  # noqa: F401,F403",
}

DOCKERFILE = f"""FROM python:3.11-slim
RUN pip install --no-cache-dir labcap=={__version__}
USER 1000
"""


def size_workers(manifest: Manifest, steps: list[Any], users: int) -> tuple[int, str]:
    """(workers, why): requests/s per user from the run, ceiling per core from calibration."""
    per_user = [s.rps / s.users for s in steps if s.users and s.rps]
    rps_per_user = max(per_user) if per_user else None
    cal = manifest.calibration or {}
    per_core = cal.get("ceiling_rps_per_core") or DEFAULT_RPS_PER_CORE
    if rps_per_user is None:
        return 2, "no measured request rate in the run: 2 workers"
    need = users * rps_per_user
    workers = max(1, math.ceil(need / (TARGET_CPU_SHARE * per_core)))
    src = "calibration" if cal.get("ceiling_rps_per_core") else "default"
    return workers, (
        f"{users} users x {rps_per_user:.3g} req/s per user (measured) = {need:.0f} req/s; "
        f"one worker core sends {per_core:.0f} req/s ({src}), used to {TARGET_CPU_SHARE:.0%}"
    )


def render_loadgen(
    manifest: Manifest,
    steps: list[Any],
    *,
    users: int,
    host: str,
    workers: int | None = None,
    spawn_rate: float = 5.0,
    image: str = f"labcap-loadgen:{__version__}",
) -> tuple[dict[str, str], str]:
    """{file name: content} and the sizing reason; raises before anything is written."""
    if users < 1:
        raise LabcapError("--expected-users must be at least 1 for --loadgen k8s")
    scenario = manifest.scenario_name
    if scenario not in SCENARIO_IMPORTS:
        raise LabcapError(
            f"--loadgen k8s renders the built-in scenarios ({', '.join(SCENARIO_IMPORTS)}); "
            f"this run used {scenario!r}: put your locustfile in the ConfigMap yourself"
        )
    why = f"{workers} workers (given)"
    if workers is None:
        workers, why = size_workers(manifest, steps, users)
    labels = {"app.kubernetes.io/part-of": "labcap-loadgen"}
    master_labels = {**labels, "app.kubernetes.io/component": "locust-master"}
    worker_labels = {**labels, "app.kubernetes.io/component": "locust-worker"}
    meta = {"namespace": NAMESPACE, "labels": labels}
    locustfile = (
        f'"""labcap scenario {scenario!r} for Locust master/worker Pods."""\n'
        f"{SCENARIO_IMPORTS[scenario]}\n"
    )
    v.check_python("locustfile.py", locustfile)
    volume = {"name": "locustfile", "configMap": {"name": "labcap-locustfile"}}
    mount = {"name": "locustfile", "mountPath": "/mnt/locust", "readOnly": True}
    security = {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }

    def container(name: str, args: list[str], cpu: str, ports: list[dict[str, Any]]) -> dict:
        c: dict[str, Any] = {
            "name": name,
            "image": image,
            "command": ["locust"],
            "args": ["-f", "/mnt/locust/locustfile.py", *args],
            "env": [
                {
                    "name": "LABCAP_HUB_PASSWORD",
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": "labcap-loadgen",
                            "key": "hub-password",
                            "optional": True,
                        }
                    },
                },
            ],  # fmt: skip
            "resources": {
                "requests": {"cpu": cpu, "memory": "256Mi"},
                "limits": {"cpu": cpu, "memory": "1Gi"},
            },
            "securityContext": security,
            "volumeMounts": [mount],
        }
        if ports:
            c["ports"] = ports
        return c

    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {**meta, "name": "labcap-locustfile"},
            "data": {"locustfile.py": locustfile},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "name": "locust-master"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": master_labels},
                "template": {
                    "metadata": {"labels": master_labels},
                    "spec": {
                        "containers": [
                            container(
                                "master",
                                [
                                    "--master",
                                    "--headless",
                                    "--expect-workers",
                                    str(workers),
                                    "-u",
                                    str(users),
                                    "-r",
                                    f"{spawn_rate:g}",
                                    "--host",
                                    host,
                                ],
                                "1",
                                [
                                    {"name": "master", "containerPort": MASTER_PORT},
                                    {"name": "ui", "containerPort": UI_PORT},
                                ],
                            )  # fmt: skip
                        ],
                        "volumes": [volume],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {**meta, "name": "locust-master"},
            "spec": {
                "selector": master_labels,
                "ports": [
                    {"name": "master", "port": MASTER_PORT, "targetPort": MASTER_PORT},
                    {"name": "ui", "port": UI_PORT, "targetPort": UI_PORT},
                ],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "name": "locust-worker"},
            "spec": {
                "replicas": workers,
                "selector": {"matchLabels": worker_labels},
                "template": {
                    "metadata": {"labels": worker_labels},
                    "spec": {
                        "containers": [
                            container(
                                "worker",
                                ["--worker", "--master-host", "locust-master"],
                                "1",
                                [],
                            )
                        ],
                        "volumes": [volume],
                    },
                },
            },
        },
    ]
    text = "\n---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)
    files = {"loadgen/locust.yaml": text, "loadgen/Dockerfile.loadgen": DOCKERFILE}
    parsed = [(n, o) for n, t in files.items() if n.endswith(".yaml") for o in v.parse_yaml(n, t)]
    count = v.validate_k8s(parsed)
    why += f"; {count} objects valid against the Kubernetes {v.k8s_schema_version()} schemas"
    return files, why
