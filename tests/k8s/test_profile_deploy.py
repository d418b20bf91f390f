"""The generated K3s profile, deployed for real (server-side apply) on the networked test
cluster and used as users do: the admin and a user sign up and log in through the proxy,
KubeSpawner spawns their pods in the user namespace, and a GPU profile's pod is placed by the
real scheduler on the node's (fake) GPU shares.

Substitutes for what K3s has and this upstream Kubernetes 1.20 lacks are listed in
tests/k8s/profile_deploy.SUBSTITUTES; everything else is the profile as generated. Images are
the registry-free stand-ins of scripts/lab-images, built on the Compose test's engine (it has
the package registries; the cluster's engine has no network) and copied into the cluster's.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
import requests

from labcap.deploy_profiles import ProfileSettings, build_profile
from tests.conftest import record_run
from tests.deploy_profiles.compose_lab import ComposeLab
from tests.docker.engine import PrivateEngine
from tests.k8s import profile_deploy as pd
from tests.k8s.cluster import REPO, delete_namespace, wait_for
from tests.support.user_cells import MLFLOW_CELL

ENGINE_DIR = os.environ.get("LABCAP_E2E_DOCKERD", "/tmp/labcap-compose-e2e")
STEPS = {1: {"hub_login": [60.0] * 20}, 2: {"hub_login": [70.0] * 20}}
ADMIN, USER, GPU_USER = "admin", "alice", "carol"
NS, USER_NS = "ailab", "ailab-users"
SETTINGS = ProfileSettings(
    "k3s", expected_users=4, gpus=1, gpu_sharing="time-slicing", gpu_users=2,
    admin_users=(ADMIN,), idle_timeout_s=60,  # the shortest the tool allows: the culler's test
)  # fmt: skip


class Hub:
    """The hub through the proxy-public Service, as a browser reaches it (NativeAuthenticator's
    forms: the same steps as the Compose end-to-end test)."""

    _form = ComposeLab._form
    sign_up = ComposeLab.sign_up
    login = ComposeLab.login
    token = ComposeLab.token
    authorize = ComposeLab.authorize
    api = ComposeLab.api
    server = ComposeLab.server

    def __init__(self, hub_url: str) -> None:
        self.hub_url = hub_url


def _images(profile: Path) -> list[str]:
    lab_images = SourceFileLoader("lab_images", str(REPO / "scripts" / "lab-images")).load_module()
    upstream, built = lab_images.k3s_images(profile)
    return [*upstream, *(image for _, image, _ in built)]


def _ready(cluster, ns: str) -> bool:
    pods = cluster.core().list_namespaced_pod(ns).items
    return bool(pods) and all(
        p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses or [])
        for p in pods
    )


@pytest.fixture(scope="module")
def k3s_lab(k8s_netns_cluster, tmp_path_factory):
    cluster = k8s_netns_cluster
    timings = {}
    base = tmp_path_factory.mktemp("k3s-deploy")
    run = record_run(base / "run", STEPS, slos=["p95_ms=500"])
    profile = base / "profile"
    build_profile(run, SETTINGS, profile)
    t0 = time.monotonic()
    engine = PrivateEngine(ENGINE_DIR)
    was_running = engine.is_running()
    docker_host = engine.start()
    try:  # the engine only builds and exports the images: stopped again once they are loaded
        env = {**os.environ, "DOCKER_HOST": docker_host, "LAB_IMAGES_GPU_NOTEBOOK": "cpu-stand-in"}
        built = subprocess.run([str(REPO / "scripts" / "lab-images"), str(profile)], env=env,
                               capture_output=True, text=True, timeout=1800)  # fmt: skip
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        loaded = cluster.script("load-images", docker_host, *_images(profile), timeout=1800)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
    finally:
        if not was_running:
            engine.stop()
    timings["images_s"] = time.monotonic() - t0
    core = cluster.core()
    for ns in (USER_NS, NS):
        delete_namespace(core, ns, timeout_s=180)
    pd.delete_static_pvs(cluster)
    pv_root = Path(cluster.kubeconfig).parent / "pv" / secrets.token_hex(4)
    objects = pd.profile_objects(profile)
    pd.static_pvs(cluster, pv_root, pd.claims_of(objects), pool=4, pool_size="10Gi")
    pd.advertise_gpus(cluster, {"nvidia.com/gpu": "2"})  # time-slicing: 2 shares of 1 GPU
    t0 = time.monotonic()
    applied = pd.apply(cluster, [pd.shrink_cpu_requests(o) for o in objects])
    wait_for(lambda: _ready(cluster, NS), 420, f"every pod in {NS} Ready")
    timings["deploy_s"] = time.monotonic() - t0
    svc = core.read_namespaced_service("proxy-public", NS).spec.cluster_ip
    with cluster.forward(svc, 8000) as port:
        hub = Hub(f"http://127.0.0.1:{port}")
        hub.profile, hub.applied, hub.timings = profile, applied, timings
        hub.passwords = {u: secrets.token_urlsafe(18) for u in (ADMIN, USER)}
        print(f"\nk3s profile deployed: {timings}")
        yield hub
    if os.environ.get("LABCAP_K8S_KEEP") != "1":
        for ns in (USER_NS, NS):
            delete_namespace(core, ns, timeout_s=180)
        pd.delete_static_pvs(cluster)


def test_profile_is_applied_server_side_and_serves(k3s_lab, k8s_netns_cluster):
    objects = pd.profile_objects(k3s_lab.profile)
    assert len(k3s_lab.applied) == len(objects)
    from kubernetes import client

    apps = client.AppsV1Api(k8s_netns_cluster.api_client())
    hub = apps.read_namespaced_deployment("hub", NS)
    managers = {m.manager: m.operation for m in hub.metadata.managed_fields}
    assert managers.get(pd.FIELD_MANAGER) == "Apply"  # server-side apply, not create
    # the device plugin's DaemonSet (upstream's GPU-node affinity) runs nothing here
    ds = apps.read_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")
    assert ds.status.desired_number_scheduled == 0
    r = requests.get(f"{k3s_lab.hub_url}/hub/health", timeout=30)
    assert r.status_code == 200


def _run_cell(hub: Hub, server_url: str, token: str, code: str, timeout_s: float = 120) -> str:
    """Start a kernel through the server's REST API, execute ``code`` over its websocket
    channels, return the stdout it printed; the kernel is shut down afterwards."""
    import json
    import uuid

    import websocket

    auth = {"Authorization": f"token {token}"}
    r = requests.post(f"{hub.hub_url}{server_url}api/kernels", headers=auth, json={},
                      timeout=60)  # fmt: skip
    assert r.status_code == 201, r.text[:300]
    kernel = r.json()["id"]
    ws_url = hub.hub_url.replace("http://", "ws://") + f"{server_url}api/kernels/{kernel}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                     timeout=timeout_s)  # fmt: skip
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))  # fmt: skip
        out = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            if kind == "execute_reply":
                assert msg["content"]["status"] == "ok", msg["content"]
                return "".join(out)
        raise AssertionError(f"no execute_reply within {timeout_s:g} s")
    finally:
        ws.close()
        requests.delete(f"{hub.hub_url}{server_url}api/kernels/{kernel}", headers=auth,
                        timeout=60)  # fmt: skip


def _wait_server(hub: Hub, token: str, user: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = hub.server(token, user)
        if last and last.get("ready"):
            return last
        time.sleep(1)
    raise AssertionError(f"{user}'s server not ready after {timeout_s:g} s: {last}")


def test_users_log_in_and_kubespawner_spawns_their_pods(k3s_lab, k8s_netns_cluster):
    hub = k3s_lab
    pw = hub.passwords
    hub.sign_up(ADMIN, pw[ADMIN])
    admin = hub.login(ADMIN, pw[ADMIN])
    assert admin is not None, "the admin cannot log in"
    hub.sign_up(USER, pw[USER])
    assert hub.login(USER, pw[USER]) is None  # not yet approved by the admin
    hub.authorize(admin, USER)
    session = hub.login(USER, pw[USER])
    assert session is not None, f"{USER} cannot log in after approval"
    token = hub.token(session, USER)
    t0 = time.monotonic()
    r = hub.api(token, "POST", f"/hub/api/users/{USER}/server", json={"profile": "cpu"})
    assert r.status_code in (201, 202), r.text
    server = _wait_server(hub, token, USER)
    hub.timings["cpu_spawn_s"] = time.monotonic() - t0
    core = k8s_netns_cluster.core()
    pod = core.read_namespaced_pod(f"jupyter-{USER}", USER_NS)
    assert pod.status.phase == "Running" and k8s_netns_cluster.inside(pod.status.pod_ip)
    assert pod.spec.node_name == k8s_netns_cluster.node
    # the user's server answers through the proxy with the user's token
    r = requests.get(f"{hub.hub_url}{server['url']}api/status",
                     headers={"Authorization": f"token {token}"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text[:300]
    # a kernel in the user's pod runs a cell (Jupyter's kernel protocol over the proxy)
    assert _run_cell(hub, server["url"], token, "print(6 * 7)") == "42\n"
    r = hub.api(token, "DELETE", f"/hub/api/users/{USER}/server")
    assert r.status_code in (202, 204)
    wait_for(lambda: hub.server(token, USER) is None, 120, f"{USER}'s server stopped")


def _scheduled(core, name: str):
    """A poll for ``wait_for``: the user pod once the scheduler has placed it, else None."""

    def placed():
        try:
            p = core.read_namespaced_pod(name, USER_NS)
        except Exception:
            return None
        conds = {c.type: c.status for c in p.status.conditions or []}
        return conds.get("PodScheduled") == "True" and p

    return placed


def test_gpu_profile_pod_is_placed_on_the_gpu_shares(k3s_lab, k8s_netns_cluster):
    """The GPU profile's pod asks for nvidia.com/gpu and the real scheduler places it on the
    node's advertised shares. It cannot start here: dockershim (the 1.20 kubelet's Docker
    runtime) knows no RuntimeClass handler 'nvidia', and there is no GPU."""
    hub = k3s_lab
    session = hub.login(ADMIN, hub.passwords[ADMIN])
    assert session is not None
    token = hub.token(session, ADMIN)
    r = hub.api(token, "POST", f"/hub/api/users/{ADMIN}/server", json={"profile": "gpu-1"})
    assert r.status_code in (201, 202), r.text
    placed = _scheduled(k8s_netns_cluster.core(), f"jupyter-{ADMIN}")
    pod = wait_for(placed, 120, "GPU pod scheduled")
    limits = pod.spec.containers[0].resources.limits
    assert limits.get("nvidia.com/gpu") == "1"
    assert pod.spec.runtime_class_name == "nvidia"
    assert pod.spec.node_name == k8s_netns_cluster.node
    hub.api(token, "DELETE", f"/hub/api/users/{ADMIN}/server")


def test_verify_gpu_check_spawns_the_gpu_profile(k3s_lab, k8s_netns_cluster):
    """`labcap verify --checks gpu`'s own path (check_gpu -> HubUser: the login form, a
    token, the spawn with the profile's gpu.spawn_options) lands on a pod that asks for
    nvidia.com/gpu, not on the CPU-only default. The pod cannot start here (no 'nvidia'
    runtime handler, no GPU), so the check ends inconclusive on the spawn, saying which
    user_options it sent; without them the CPU pod would start and the check would fail."""
    from labcap.verify.records import INCONCLUSIVE
    from labcap.verify.target import read_gpu_plan

    hub, user = k3s_lab, GPU_USER
    assert read_gpu_plan(hub.profile)["spawn_options"] == {"profile": "gpu-1"}
    check, results = _gpu_check_started(hub, user, spawn_timeout_s=60)
    placed = _scheduled(k8s_netns_cluster.core(), f"jupyter-{user}")
    try:
        pod = wait_for(placed, 60, f"jupyter-{user} scheduled")
    except TimeoutError:
        check.join(timeout=180)
        said = f"verify's GPU check said: {results}"
        raise AssertionError(f"no GPU pod was scheduled; {said}") from None
    finally:
        check.join(timeout=180)
    assert pod.spec.containers[0].resources.limits.get("nvidia.com/gpu") == "1"
    assert pod.spec.runtime_class_name == "nvidia" and pod.spec.node_name == k8s_netns_cluster.node
    (result,) = results
    assert result.status == INCONCLUSIVE, result
    assert "user_options {'profile': 'gpu-1'}" in result.summary
    assert "spawn: not ready after 60 s" in result.summary
    assert result.details["spawn_options"] == {"profile": "gpu-1"}


def _gpu_check_started(hub: Hub, user: str, spawn_timeout_s: float):
    """verify's GPU check (check_gpu with the profile's GPU plan) for ``user`` (signed up and
    approved here the first time), in a thread; returns (thread, its results list)."""
    import threading

    from labcap.verify.gpu import check_gpu
    from labcap.verify.hub import HubSettings
    from labcap.verify.target import Deployment, read_gpu_plan

    if user not in hub.passwords:
        hub.passwords[user] = secrets.token_urlsafe(18)
        hub.sign_up(user, hub.passwords[user])
        admin = hub.login(ADMIN, hub.passwords[ADMIN])
        assert admin is not None
        hub.authorize(admin, user)
    plan = read_gpu_plan(hub.profile)
    new = Deployment("new", hub.hub_url, hub_url=hub.hub_url, gpu_plan=plan,
                     hub_password=hub.passwords[user])  # fmt: skip
    results: list = []
    settings = HubSettings(spawn_timeout_s=spawn_timeout_s, stop_timeout_s=60)
    check = threading.Thread(target=lambda: results.append(check_gpu(new, user, settings)))
    check.start()
    return check, results


def test_verify_gpu_check_fails_on_a_gpu_profile_that_gives_no_gpu(k3s_lab, k8s_netns_cluster):
    """A GPU profile broken as a hand edit breaks it: the gpu-1 option of the hub's config
    without its nvidia.com/gpu limit and the nvidia RuntimeClass. The same `labcap verify
    --checks gpu` path then spawns a CPU-only pod that starts, and the check fails, naming the
    GPU the plan expects and the server does not see. The hub's config is restored after."""
    import re

    from labcap.verify.records import FAIL

    hub, cluster, user = k3s_lab, k8s_netns_cluster, GPU_USER
    config = "jupyterhub_config.py"
    (cm,) = [o for o in pd.profile_objects(hub.profile)
             if o["kind"] == "ConfigMap" and config in o.get("data", {})]  # fmt: skip
    text = cm["data"][config]
    gpu_lines = (
        r'"(extra_resource_limits|extra_pod_config)": \{"(nvidia\.com/gpu|runtimeClassName)"'
    )
    broken, n = re.subn(rf"^ *{gpu_lines}.*\n", "", text, flags=re.M)
    assert n == 2, "the gpu-1 option's GPU limit and RuntimeClass lines were not found"
    pd.apply(cluster, [{**cm, "data": {**cm["data"], config: broken}}])
    try:
        _restarted(hub, cluster)
        check, results = _gpu_check_started(hub, user, spawn_timeout_s=180)
        pod = wait_for(_scheduled(cluster.core(), f"jupyter-{user}"), 120, "the pod scheduled")
        check.join(timeout=400)
        assert "nvidia.com/gpu" not in (pod.spec.containers[0].resources.limits or {})
        assert pod.spec.runtime_class_name is None
        (result,) = results
        print(f"\nverify gpu on the broken profile: {result.status}: {result.summary}")
        assert result.status == FAIL, result
        assert [(d.kind, d.subject) for d in result.differences] == [
            ("gpu-not-visible", "user server")
        ], result.differences
        assert "the plan expects 1 GPU(s) (time-slicing); the server sees none" in result.summary
    finally:
        pd.apply(cluster, [cm])
        _restarted(hub, cluster)


def _spawn(hub: Hub, user: str, profile: str = "cpu") -> tuple[str, dict]:
    """The user's running server (spawned now unless it runs already)."""
    session = hub.login(user, hub.passwords[user])
    assert session is not None, f"{user} cannot log in"
    token = hub.token(session, user)
    server = hub.server(token, user)
    if server and server.get("ready"):
        return token, server
    r = hub.api(token, "POST", f"/hub/api/users/{user}/server", json={"profile": profile})
    assert r.status_code in (201, 202), r.text
    return token, _wait_server(hub, token, user)


def test_a_hub_restart_leaves_user_pods_running(k3s_lab, k8s_netns_cluster):
    """cleanup_servers = False (z2jh): a hub that shuts down leaves the user pods alone (with
    True it stops every server on its way out). Checked once the old hub pod is gone: later
    the new hub's idle culler (60 s here) may stop the idle server, by design."""
    hub = k3s_lab
    core = k8s_netns_cluster.core()
    _spawn(hub, USER)
    before = core.read_namespaced_pod(f"jupyter-{USER}", USER_NS).metadata.uid
    _delete_hub_pod(k8s_netns_cluster)
    pod = core.read_namespaced_pod(f"jupyter-{USER}", USER_NS)
    assert pod.metadata.uid == before and pod.status.phase == "Running"
    assert pod.metadata.deletion_timestamp is None
    _wait_hub_serves(hub, k8s_netns_cluster)


def _delete_hub_pod(cluster) -> None:
    """Deletes the hub pod; returns once it is gone (its Deployment makes a new one)."""
    core = cluster.core()
    old = [p.metadata.name for p in core.list_namespaced_pod(
        NS, label_selector="app.kubernetes.io/name=hub").items]  # fmt: skip
    assert old
    for name in old:
        core.delete_namespaced_pod(name, NS)

    def old_hub_gone():
        return not set(old) & {p.metadata.name for p in core.list_namespaced_pod(NS).items}

    wait_for(old_hub_gone, 120, "the old hub pod gone")


def _wait_hub_serves(hub: Hub, cluster) -> None:
    """Returns once every pod of the lab is Ready and the hub's login page answers through
    the proxy."""
    wait_for(lambda: _ready(cluster, NS), 300, "a new hub Ready")

    def through_proxy():  # the Service's endpoints and kube-proxy's rules follow the new pod
        try:
            return requests.get(f"{hub.hub_url}/hub/login", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    wait_for(through_proxy, 120, "the new hub's login page through the proxy")


def _restarted(hub: Hub, cluster) -> None:
    _delete_hub_pod(cluster)
    _wait_hub_serves(hub, cluster)


def test_the_idle_culler_stops_an_idle_server(k3s_lab, k8s_netns_cluster):
    """jupyterhub-idle-culler (a hub-managed service) stops a server idle for the profile's
    --idle-timeout (60 s here; it checks every timeout/2) and KubeSpawner deletes its pod."""
    hub = k3s_lab
    token, _ = _spawn(hub, USER)
    core = k8s_netns_cluster.core()
    wait_for(lambda: hub.server(token, USER) is None, 300, f"{USER}'s idle server culled")

    def pod_gone():
        try:
            core.read_namespaced_pod(f"jupyter-{USER}", USER_NS)
            return False
        except Exception:
            return True

    wait_for(pod_gone, 120, f"jupyter-{USER} deleted")


def test_a_users_kernel_logs_an_mlflow_run_through_the_service(k3s_lab, k8s_netns_cluster):
    """The profile's MLflow route for users: MLFLOW_TRACKING_URI in the user pod names the
    in-cluster Service; a cell creates an experiment and a run, logs a metric, uploads an
    artifact. Read back from outside through the same Service (forwarded to 127.0.0.1)."""
    hub = k3s_lab
    token, server = _spawn(hub, USER)
    experiment = f"k3s-e2e-{secrets.token_hex(4)}"
    out = _run_cell(hub, server["url"], token, MLFLOW_CELL.replace("EXPERIMENT", experiment))
    base, run_id = out.split()
    assert base == "http://mlflow.ailab.svc.cluster.local:5000"
    core = k8s_netns_cluster.core()
    svc = core.read_namespaced_service("mlflow", NS).spec.cluster_ip
    with k8s_netns_cluster.forward(svc, 5000) as port:
        api = f"http://127.0.0.1:{port}/api/2.0"
        run = requests.get(f"{api}/mlflow/runs/get", params={"run_id": run_id}, timeout=30)
        assert run.status_code == 200, run.text[:300]
        data = run.json()["run"]
        assert data["info"]["status"] == "FINISHED"
        assert {m["key"]: m["value"] for m in data["data"]["metrics"]} == {"accuracy": 0.93}
        listed = requests.get(f"{api}/mlflow/artifacts/list", params={"run_id": run_id},
                              timeout=30).json()  # fmt: skip
        assert [f["path"] for f in listed.get("files", [])] == ["model.txt"]
    hub.api(token, "DELETE", f"/hub/api/users/{USER}/server")


def test_labcap_run_target_k8s_records_a_real_user_pods_startup(k3s_lab, k8s_netns_cluster,
                                                                  tmp_path):  # fmt: skip
    """`labcap run --target k8s` against the deployed profile: the load goes to the hub
    through the proxy (forwarded to 127.0.0.1), the API server is reached through the test
    cluster's loopback forwarder (its kubeconfig), and the kubernetes collector records the
    startup phases of the user pod KubeSpawner creates during the run (KubeSpawner's label
    component=singleuser-server, labcap's default selector)."""
    import json
    import sys
    import threading

    import pandas as pd

    hub = k3s_lab
    core = k8s_netns_cluster.core()
    session = hub.login(USER, hub.passwords[USER])
    assert session is not None
    token = hub.token(session, USER)
    if hub.server(token, USER):
        hub.api(token, "DELETE", f"/hub/api/users/{USER}/server")
        wait_for(lambda: hub.server(token, USER) is None, 120, f"{USER}'s server stopped")
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "labcap.cli", "run", "--target", "k8s",
        "--kubeconfig", str(k8s_netns_cluster.kubeconfig), "--namespace", USER_NS,
        "--host", hub.hub_url, "--no-calibrate",
        "--scenario", str(REPO / "tests/support/locustfile_target.py"), "--users", "1,2",
        "--step-duration", "40s", "--settle", "1s", "--window", "2s", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "LABCAP_TEST_PATH": "/hub/health", "LABCAP_TEST_NAME": "hub.health",
           "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)  # fmt: skip
    uids: list[str] = []
    errors: list[BaseException] = []

    def spawn_during_the_run() -> None:
        try:
            journal = out / "journal.jsonl"
            wait_for(lambda: journal.exists() and '"kind":"start"' in journal.read_text(),
                     90, "load start", 0.2)  # fmt: skip
            r = hub.api(token, "POST", f"/hub/api/users/{USER}/server", json={"profile": "cpu"})
            assert r.status_code in (201, 202), r.text
            _wait_server(hub, token, USER, timeout_s=60)
            uids.append(core.read_namespaced_pod(f"jupyter-{USER}", USER_NS).metadata.uid)
        except BaseException as e:  # surfaced below
            errors.append(e)

    spawner = threading.Thread(target=spawn_during_the_run)
    spawner.start()
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        spawner.join(timeout=120)
    assert not errors, errors
    assert proc.returncode == 0, err[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "k8s" and manifest["status"] == "complete", manifest
    recs = pd.read_parquet(out / "startup_records.parquet")
    print("\nstartup records:\n" + recs.to_string())
    mine = recs[recs["container_id"] == uids[0]]
    assert len(mine) == 1, recs.to_string()
    row = mine.iloc[0]
    assert row["outcome"] == "ready" and row["container"] == f"jupyter-{USER}"
    assert row["ready_s"] >= row["scheduled_s"] >= 0
    windows = pd.read_parquet(out / "windows.parquet")
    assert windows["requests"].sum() > 0
    kubeconfig_text = k8s_netns_cluster.kubeconfig.read_text()
    tok = next(line.split("token:", 1)[1].strip().strip('"')
               for line in kubeconfig_text.splitlines() if "token:" in line)  # fmt: skip
    for f in out.iterdir():
        if f.is_file():
            assert tok not in f.read_bytes().decode("latin-1"), f
    hub.api(token, "DELETE", f"/hub/api/users/{USER}/server")
