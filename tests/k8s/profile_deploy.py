"""Deploy a generated K3s profile for real on the networked test cluster (server-side apply).

The profile's objects are applied as `kubectl apply --server-side` would (PATCH with
application/apply-patch+yaml, field manager ``labcap-test``). What the test cluster, an
upstream Kubernetes 1.20 built from source on a 2-core machine, lacks compared to K3s is
substituted, and ONLY that; each substitute is listed in SUBSTITUTES:
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

FIELD_MANAGER = "labcap-test"
SUBSTITUTES = {
    "local-path provisioner": "static hostPath PersistentVolumes (mode 0777 directories under "
    "the cluster's state dir), pre-bound to the profile's claims, plus a pool for user claims",
    "Traefik (Ingress)": "the Ingress object is applied but no controller serves it; the test "
    "reaches proxy-public through a forwarder from 127.0.0.1 into the cluster's namespace",
    "NVIDIA GPUs": "the node's status advertises fake nvidia.com/gpu (and MIG) extended "
    "resources (node status patch), so the real scheduler places GPU pods; the device plugin's "
    "DaemonSet has upstream's GPU-node affinity and so runs no pod on this GPU-less node",
    "CPU requests": "the 2-core test node cannot hold a lab sized for a server: every "
    "container's CPU request is lowered to 50m at apply time (limits unchanged)",
    "NetworkPolicy": "applied, not enforced (the bridge CNI has no policy engine)",
}
TEST_CPU_REQUEST = "50m"


def profile_objects(profile: Path) -> list[dict]:
    objs = []
    for f in [*sorted((profile / "manifests").glob("*.yaml")), profile / "secrets.yaml"]:
        objs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    # namespaces first, as `kubectl apply -f manifests/` does by file order
    return sorted(objs, key=lambda o: 0 if o["kind"] == "Namespace" else 1)


def shrink_cpu_requests(obj: dict) -> dict:
    """The 'CPU requests' substitute (see SUBSTITUTES)."""
    spec = obj.get("spec", {}).get("template", {}).get("spec")
    if not spec:
        return obj
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        req = c.get("resources", {}).get("requests")
        if req and "cpu" in req:
            req["cpu"] = TEST_CPU_REQUEST
    return obj


def apply(cluster, objects: list[dict]) -> list[str]:
    """Server-side apply of each object; returns 'Kind ns/name' of those applied."""
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(cluster.api_client())
    done = []
    for o in objects:
        res = dyn.resources.get(api_version=o["apiVersion"], kind=o["kind"])
        meta = o["metadata"]
        res.server_side_apply(
            body=o,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        done.append(f"{o['kind']} {meta.get('namespace', '')}/{meta['name']}")
    return done


def static_pvs(cluster, root: Path, claims: dict[tuple[str, str], str], pool: int,
               pool_size: str) -> None:  # fmt: skip
    """The 'local-path provisioner' substitute: one PV per named claim, ``pool`` unbound."""
    core = cluster.core()

    def pv(name: str, size: str, claim: tuple[str, str] | None) -> None:
        path = root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o777)
        spec = {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(path), "type": "Directory"},
        }
        if claim:
            spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
        body = {"metadata": {"name": name, "labels": {"labcap/test-pv": "1"}}, "spec": spec}
        core.create_persistent_volume(body)

    for i, ((ns, name), size) in enumerate(sorted(claims.items())):
        pv(f"labcap-pv-{i}-{name}"[:63], size, (ns, name))
    for i in range(pool):
        pv(f"labcap-pv-user-{i}", pool_size, None)


def delete_static_pvs(cluster) -> None:
    cluster.core().delete_collection_persistent_volume(label_selector="labcap/test-pv=1")


def advertise_gpus(cluster, resources: dict[str, str]) -> None:
    """The 'NVIDIA GPUs' substitute: extended resources on the node's status (as the
    Kubernetes docs' "Advertise Extended Resources for a Node"; the kubelet keeps them)."""
    body = {"status": {"capacity": resources, "allocatable": resources}}
    cluster.core().patch_node_status(cluster.node, body)


def claims_of(objects: list[dict]) -> dict[tuple[str, str], str]:
    """(namespace, claim name) -> size of every claim the profile makes (PVCs and the
    StatefulSets' volumeClaimTemplates for replica 0)."""
    out = {}
    for o in objects:
        ns = o["metadata"].get("namespace", "default")
        if o["kind"] == "PersistentVolumeClaim":
            out[(ns, o["metadata"]["name"])] = o["spec"]["resources"]["requests"]["storage"]
        if o["kind"] == "StatefulSet":
            for t in o["spec"].get("volumeClaimTemplates", []):
                name = f"{t['metadata']['name']}-{o['metadata']['name']}-0"
                out[(ns, name)] = t["spec"]["resources"]["requests"]["storage"]
    return out
