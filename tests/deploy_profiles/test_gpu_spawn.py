"""The GPU server a profile's hub starts for `labcap verify --checks gpu`: sizing.json's
``gpu.spawn_options`` must name a GPU entry of the rendered hub config, not its CPU default.

The running side (KubeSpawner placing the pod on nvidia.com/gpu) is in
tests/k8s/test_profile_deploy.py; here the rendered files, read as the spawners read them.
"""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from labcap.deploy_profiles import ProfileSettings, build_profile
from labcap.errors import LabcapError
from labcap.verify.target import read_gpu_plan, resolve_deployment

from .conftest import CASES

K3S_MIG = CASES["k3s-mig-mixed"]
K3S_TS = ProfileSettings("k3s", expected_users=40, gpus=1, gpu_sharing="time-slicing", gpu_users=2)
COMPOSE = ProfileSettings("compose", expected_users=20, gpus=1, gpu_users=1)


def _k3s_profile_list(out):
    docs = yaml.safe_load_all((out / "manifests/50-hub.yaml").read_text())
    config = next(d for d in docs if d and d["kind"] == "ConfigMap")["data"]["jupyterhub_config.py"]
    body = re.search(r"^c\.KubeSpawner\.profile_list = (\[.*?^\])$", config, re.S | re.M)
    assert body, "no profile_list in the rendered hub config"
    return ast.literal_eval(body[1])


@pytest.mark.parametrize("settings", [K3S_TS, K3S_MIG], ids=["time-slicing", "mig-mixed"])
def test_k3s_spawn_options_name_a_gpu_profile_not_the_cpu_default(lab_run, tmp_path, settings):
    out = tmp_path / "k3s"
    build_profile(lab_run, settings, out)
    options = json.loads((out / "sizing.json").read_text())["gpu"]["spawn_options"]
    profiles = {p["slug"]: p for p in _k3s_profile_list(out)}
    default = next(slug for slug, p in profiles.items() if p.get("default"))
    assert options == {"profile": "gpu-1"} and options["profile"] != default
    limits = profiles[options["profile"]]["kubespawner_override"]["extra_resource_limits"]
    assert list(limits.values()) == ["1"]
    assert next(iter(limits)).startswith(("nvidia.com/gpu", "nvidia.com/mig-"))
    # verify reads them from the profile directory, as `--profile DIR` does
    assert read_gpu_plan(out)["spawn_options"] == options


def test_compose_spawn_options_name_the_gpu_image_choice(lab_run, tmp_path):
    out = tmp_path / "compose"
    build_profile(lab_run, COMPOSE, out)
    options = json.loads((out / "sizing.json").read_text())["gpu"]["spawn_options"]
    config = (out / "jupyterhub_config.py").read_text()
    choice = re.search(r"^GPU_CHOICE = (.+)$", config, re.M)
    assert choice and options == {"image": ast.literal_eval(choice[1])}
    assert 'GPU_CHOICE: os.environ["GPU_NOTEBOOK_IMAGE"]' in config


def test_cpu_only_profiles_have_no_spawn_options(lab_run, tmp_path):
    build_profile(lab_run, ProfileSettings("k3s", expected_users=10), tmp_path / "o")
    assert json.loads((tmp_path / "o/sizing.json").read_text())["gpu"]["spawn_options"] is None


def test_profiles_rendered_before_spawn_options_get_them_from_the_platform(tmp_path):
    for platform, options in (("k3s", {"profile": "gpu-1"}), ("compose", {"image": "GPU share"})):
        sizing = tmp_path / f"{platform}.json"
        sizing.write_text(json.dumps({"platform": platform, "gpu": {"gpus": 1, "sharing": "none"}}))
        assert read_gpu_plan(sizing)["spawn_options"] == options
    # no platform named: nothing is guessed (verify spawns the default and says so)
    sizing.write_text(json.dumps({"gpu": {"gpus": 1, "sharing": "none"}}))
    assert "spawn_options" not in read_gpu_plan(sizing)


def test_target_file_spawn_options_inline_and_bad(tmp_path):
    target = tmp_path / "new.yaml"
    target.write_text(
        "hub_url: http://127.0.0.1:1/\ngpu: {gpus: 1, spawn_options: {profile: a100}}\n"
    )
    dep = resolve_deployment("new", str(target), env={})
    assert dep.gpu_plan["spawn_options"] == {"profile": "a100"}
    target.write_text("hub_url: http://127.0.0.1:1/\ngpu: {gpus: 1, spawn_options: gpu-1}\n")
    with pytest.raises(LabcapError, match="gpu.spawn_options must be a mapping of user_options"):
        resolve_deployment("new", str(target), env={})


def test_gpu_check_says_which_server_it_probed():
    # the probe handed in (no GPU here, NVML absent): what the check reports about the spawn
    from labcap.verify.gpu import check_gpu
    from labcap.verify.target import Deployment

    seen = {"error": "NVML unavailable", "device_count": 0}
    plan = {"gpus": 1, "sharing": "none"}
    bare = Deployment("new", "t", hub_url="http://127.0.0.1:1", gpu_plan=plan)
    result = check_gpu(bare, "alice", probe=lambda: seen)
    assert "spawned the hub's default profile" in result.summary
    assert result.details["spawn_options"] is None
    named = Deployment("new", "t", hub_url="http://127.0.0.1:1",
                       gpu_plan={**plan, "spawn_options": {"profile": "gpu-1"}})  # fmt: skip
    result = check_gpu(named, "alice", probe=lambda: seen)
    assert "default profile" not in result.summary
    assert result.details["spawn_options"] == {"profile": "gpu-1"}
