"""Load generation in a cluster: ``labcap worker`` Pods that join a master the user runs.

``labcap profile RUN --platform k3s --loadgen k8s --loadgen-master ADDR:PORT`` writes
``loadgen/`` beside the profile: when one machine cannot generate the load (``labcap
calibrate``'s ceiling, or workers over ~80 % of a core), a Job of N ``labcap worker`` Pods
lends the cluster's cores to one ``labcap run --expect-workers N --master-bind ADDR:PORT``,
which writes the run directory where it runs (same windows, lock-step check, collectors
and calibration as a local run; each Pod calibrates itself first). The workers are sized
from the run: requests per user per second (measured) times the expected users, over 70 %
of one generator core's ceiling (calibration).

The Pods run the image the project builds itself (``scripts/lab-images --labcap``: labcap
from its own source, never from a package registry); the master hands them the load plan
and the locustfile, so any scenario works, built-in or a user's locustfile. The shared
secret comes from a Secret the user creates (its value is never rendered). Manifests are
validated against the Kubernetes schemas (kubernetes-validate, strict) before anything is
written.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

import yaml

from labcap import __version__
from labcap.deploy_profiles import validate as v
from labcap.errors import LabcapError
from labcap.loadtests.handshake import SECRET_ENV, parse_address
from labcap.model import Manifest

NAMESPACE = "labcap-loadgen"
SECRET_NAME = "labcap-worker"  # created by the user: kubectl create secret generic ...
TARGET_CPU_SHARE = 0.7  # of a worker's core, leaving room below the 80 % warning
DEFAULT_RPS_PER_CORE = 700.0  # HttpUser on a small core, when the run was not calibrated
IMAGE = f"labcap/labcap:{__version__}"
WORKER_WAIT = "600s"  # how long a Pod keeps trying to reach the master

# The labcap image from a wheel of this checkout (`pip wheel --no-deps -w loadgen .`); Locust
# pinned to the master's version, which the handshake checks.
DOCKERFILE = """# labcap's own image for `labcap worker` Pods: built from a labcap checkout's
# wheel, not from a package registry. Without a registry, `scripts/lab-images --labcap` builds the
# same image (tag labcap/labcap:{version}).
#   pip wheel --no-deps -w loadgen /path/to/labcap-checkout
#   docker build -f loadgen/Dockerfile.labcap -t labcap/labcap:{version} loadgen
FROM python:3.11-slim
COPY labcap-{version}-py3-none-any.whl /tmp/
RUN pip install --no-cache-dir /tmp/labcap-{version}-py3-none-any.whl locust=={locust} \\
 && rm /tmp/labcap-{version}-py3-none-any.whl
USER 1000
ENTRYPOINT ["labcap"]
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
    master: str | None,
    workers: int | None = None,
    host_network: bool = False,
    image: str = IMAGE,
    locust_version: str | None = None,
) -> tuple[dict[str, str], str]:
    """{file name: content} and the sizing reason; raises before anything is written."""
    if users < 1:
        raise LabcapError("--expected-users must be at least 1 for --loadgen k8s")
    if not master:
        raise LabcapError(
            "--loadgen k8s needs --loadgen-master HOST:PORT: where the Pods reach your "
            "`labcap run --expect-workers N --master-bind ADDR:PORT`"
        )
    master_host, master_port = parse_address(master, what="--loadgen-master")
    why = f"{workers} workers (given)"
    if workers is None:
        workers, why = size_workers(manifest, steps, users)
    labels = {"app.kubernetes.io/part-of": "labcap-loadgen"}
    worker_labels = {**labels, "app.kubernetes.io/component": "labcap-worker"}
    meta = {"namespace": NAMESPACE, "labels": labels}
    security = {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    container = {
        "name": "worker",
        "image": image,
        "imagePullPolicy": "IfNotPresent",  # built locally (scripts/lab-images --labcap)
        "command": ["labcap"],
        "args": ["worker", "--master", f"{master_host}:{master_port}", "--wait", WORKER_WAIT],
        "env": [
            {
                "name": SECRET_ENV,
                "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "secret"}},
            },
            {
                "name": "LABCAP_HUB_PASSWORD",
                "valueFrom": {
                    "secretKeyRef": {"name": SECRET_NAME, "key": "hub-password", "optional": True}
                },
            },
        ],
        "resources": {
            "requests": {"cpu": "1", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": security,
    }
    pod_spec: dict[str, Any] = {"restartPolicy": "OnFailure", "containers": [container]}
    if host_network:  # clusters whose Pod network cannot reach the master (the test cluster)
        pod_spec["hostNetwork"] = True
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {**meta, "name": "labcap-worker"},
            "spec": {
                # one run: each Pod joins the master once and ends with it
                "parallelism": workers,
                "completions": workers,
                "backoffLimit": 2 * workers,
                "ttlSecondsAfterFinished": 3600,
                "template": {"metadata": {"labels": worker_labels}, "spec": pod_spec},
            },
        },
    ]
    text = "\n---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)
    files = {
        "loadgen/workers.yaml": text,
        "loadgen/Dockerfile.labcap": DOCKERFILE.format(
            version=__version__, locust=locust_version or _locust_version()
        ),
        "loadgen/README.md": _readme(manifest, workers, host, master_port, image),
    }
    parsed = [(n, o) for n, t in files.items() if n.endswith(".yaml") for o in v.parse_yaml(n, t)]
    count = v.validate_k8s(parsed)
    why += f"; {count} objects valid against the Kubernetes {v.k8s_schema_version()} schemas"
    return files, why


def _locust_version() -> str:
    from importlib.metadata import version

    return version("locust")


def _readme(manifest: Manifest, workers: int, host: str, port: int, image: str) -> str:
    scenario = str(manifest.scenario.get("path") or manifest.scenario_name)
    users = ",".join(str(s["users"]) for s in (manifest.load or {}).get("steps", [])) or "..."
    run = shlex.join(
        [
            "labcap", "run", "--host", host, "--scenario", scenario, "--users", users,
            "--expect-workers", str(workers), "--master-bind", f"0.0.0.0:{port}",
        ]
    )  # fmt: skip
    return f"""# In-cluster load generators for labcap

{workers} `labcap worker` Pods (a Job) lend the cluster's cores to one `labcap run` on your
machine, which writes the run directory there. Pods reach it at the `--loadgen-master`
address; Locust's own link uses the port after it ({port + 1}).

1. Build labcap's image where the cluster's nodes find it (no registry needed):
   `scripts/lab-images --labcap` in a labcap checkout (tag `{image}`), or see
   `Dockerfile.labcap`.
2. The shared secret (never in these files), and the hub password if the scenario logs in:

       export {SECRET_ENV}=$(openssl rand -hex 32)
       kubectl create namespace {NAMESPACE}
       kubectl -n {NAMESPACE} create secret generic {SECRET_NAME} \\
           --from-literal=secret="${SECRET_ENV}" \\
           --from-literal=hub-password="$LABCAP_HUB_PASSWORD"

3. Start the master (it waits for the workers), then the workers:

       {run} --out runs/cluster
       kubectl apply -f loadgen/workers.yaml

   (a locustfile scenario: give its path; the master hands it to the Pods.)
4. For the next run: `kubectl -n {NAMESPACE} delete job labcap-worker`, then again.

What travels in clear between the Pods and the master: see labcap's README, "Workers on
other machines".
"""
