"""The NVIDIA device-plugin DaemonSet of K3s profiles matches what upstream's Helm chart
(NVIDIA/k8s-device-plugin v0.17.0, deployments/helm/nvidia-device-plugin) renders for the same
settings: it only goes to GPU nodes, and with MIG it gets CAP_SYS_ADMIN and
NVIDIA_MIG_MONITOR_DEVICES=all (without them the plugin cannot watch MIG devices and the node
shows no MIG resources)."""

from __future__ import annotations

import pytest
import yaml

from labcap.deploy_profiles import ProfileSettings, build_profile

TIME_SLICING = ProfileSettings("k3s", expected_users=40, gpus=2, gpu_sharing="time-slicing",
                               gpu_users=8)  # fmt: skip
MIG = ProfileSettings("k3s", expected_users=40, gpus=2, gpu_sharing="mig", gpu_model="A100-40GB",
                      mig_profiles=("1g.5gb=4", "3g.20gb=1"), gpu_users=10)  # fmt: skip
# upstream values.yaml `affinity`: any one of these node labels
UPSTREAM_TERMS = [
    ("feature.node.kubernetes.io/pci-10de.present", ["true"]),
    ("feature.node.kubernetes.io/cpu-model.vendor_id", ["NVIDIA"]),
    ("nvidia.com/gpu.present", ["true"]),
]


def _daemonset(lab_run, tmp_path, settings):
    build_profile(lab_run, settings, tmp_path / "o")
    docs = yaml.safe_load_all((tmp_path / "o/manifests/20-nvidia-device-plugin.yaml").read_text())
    return next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]


@pytest.mark.parametrize("settings", [TIME_SLICING, MIG], ids=["time-slicing", "mig"])
def test_only_on_gpu_nodes_as_upstream(lab_run, tmp_path, settings):
    spec = _daemonset(lab_run, tmp_path, settings)
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    got = [
        (e["key"], e["values"])
        for t in terms["nodeSelectorTerms"]
        for e in t["matchExpressions"]
        if e["operator"] == "In"
    ]
    assert got == UPSTREAM_TERMS
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in spec["tolerations"]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"


def test_mig_gets_sys_admin_and_monitors_mig_devices(lab_run, tmp_path):
    c = _daemonset(lab_run, tmp_path, MIG)["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["NVIDIA_MIG_MONITOR_DEVICES"] == "all"
    assert c["securityContext"] == {"capabilities": {"add": ["SYS_ADMIN"]}}


def test_without_mig_all_capabilities_dropped(lab_run, tmp_path):
    c = _daemonset(lab_run, tmp_path, TIME_SLICING)["containers"][0]
    assert "NVIDIA_MIG_MONITOR_DEVICES" not in {e["name"] for e in c["env"]}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
