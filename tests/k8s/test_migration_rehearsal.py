"""The guide's migration, rehearsed end to end as one test: Compose -> K3s -> verify -> rollback.

1. **Old lab**: a Compose profile (``labcap profile --platform compose``) built by
   ``scripts/lab-images`` and started on the private Docker engine, as in
   tests/deploy_profiles/test_compose_e2e.py (its one override: host network, 127.0.0.1
   ports). Data: the admin and two users signed up and approved (NativeAuthenticator), their
   home volumes with files, MLflow experiments, runs, params, tags, metric histories,
   artifacts uploaded through the server, and a registered model with versions and an alias.
2. **Measure and decide**: a short real ``labcap run`` (scenario mlflow) on the old lab,
   ``labcap plan`` on it, ``labcap profile --platform k3s`` from it.
3. **Deploy K3s** beside it (the runbook's steps 2-4, which do not depend on the backup:
   applied first so that its pods start while the backup runs): the generated manifests
   applied server-side on the networked test cluster (tests/k8s/profile_deploy.py), with the
   secrets copied from the Compose ``.env`` as step 4 says.
4. **Back up** (the K3s runbook's step 1, its bash block as written): writes stop (hub,
   proxy, MLflow, user servers), then ``pg_dumpall``/``pg_dump`` and tars of the artifact
   and home volumes.
5. **Migrate** (step 5's two bash blocks as written, real ``kubectl`` against the cluster):
   ``pg_restore`` into ``postgres-0`` through ``kubectl exec -i``, the artifacts unpacked into
   the MLflow pod, each home into its ``claim-<user>`` through a restore pod.
6. **Damage** (checked first, before any spawn writes into the K3s homes): one artifact's
   bytes changed (same size) and one user's home emptied in the K3s copy; ``labcap verify``
   fails and names exactly those. Then the copy is repaired.
7. **Verify**: ``labcap verify --old <compose> --new <k3s> --checks data,logins`` passes:
   the users log in and spawn on both; every home file's sha256, every MLflow object (runs,
   params, tags, metric histories, artifacts with their sha256, the model registry).
8. **A broken login**: bob's approval revoked on the K3s hub (NativeAuthenticator's toggle):
   ``labcap verify --checks logins`` fails naming exactly ``login-failed user bob``; then
   approved again.
9. **Measure both, compare**: the same ``labcap run`` (scenario lab, 2 and 3 users, 60 s
   steps) on the Compose lab (``--target docker``) and then on the K3s lab (``--target k8s``),
   as the load accounts that migrated with the hub's database; every login gets its token
   and the load's servers' startups are recorded on both. The network rule is watched while
   they run (every peer of labcap, its load engine, the private Docker engine and its
   containers is loopback; ``check-net`` for the cluster's namespace and pods). ``labcap
   report compose-run k3s-run``: each latency cell at the reference step is the runs' own
   p95. ``labcap verify --checks capacity --capacity-runs``: its status and exit code
   follow the gate's outcome on the two runs (not asserted to pass: one-minute steps hold a
   handful of spawns).
10. **Roll back** (the runbook's "Rollback" block as written): the Compose lab serves again
   with its data as before (MLflow snapshot, less labcap's own ``labcap-*`` load data, and
   home checksums equal to the ones taken before the backup; a user logs in, spawns, reads
   a file).

Substitutes (everything else is the generated profile and runbook as a user gets them):

* K3s -> the networked test cluster (upstream Kubernetes 1.20): the substitutes of
  tests/k8s/profile_deploy.SUBSTITUTES (static hostPath PersistentVolumes for the
  local-path provisioner, a 127.0.0.1 forwarder into the cluster's namespace for the
  Traefik Ingress, CPU requests lowered to 50m). Step 4's ``kubectl apply -f`` is that
  server-side apply of the same files.
* ``$BACKUP``: the runbook's ``/opt/backups/...`` line is replaced by a directory of the
  test; ``/path/to/compose/deployment`` (rollback) by the Compose profile's directory.
* ``kubectl``: the machine's kubectl with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`` (the
  test cluster is Kubernetes 1.20, whose exec streams are SPDY only).
* ``docker compose``: Debian's docker-compose 1.29 with the e2e test's override (same
  project, loopback ports) through a shell function.
* ``sudo systemctl stop k3s`` (rollback): the cluster is shared by the package's tests, so
  K3s "stops answering" by scaling the lab's hub, proxy and MLflow Deployments to 0.
* Parallel testing: the guide keeps the old lab serving while the new one is verified; the
  runbook's step 1 stopped it for a consistent copy, so the test starts its hub, proxy and
  MLflow again for ``verify`` (read-only for the data; the logins check spawns and stops a
  server per sample user) and stops them again for the cut-over.
* The users' home trees are compared where each side keeps them on this machine: the
  private engine's volume directories and the static PVs' directories (one
  ``--old-files``/``--new-files`` pair per user).

Needs root, Docker and the networked test cluster (skips only when those cannot run here,
saying why). Wall time is printed per phase.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import requests
import yaml

from labcap.deploy_profiles import ProfileSettings, build_profile
from labcap.verify.data import DEFAULT_IGNORE, drop_ignored
from labcap.verify.files import compare_trees
from labcap.verify.mlflow_data import MlflowReader, compare_mlflow
from tests.conftest import record_run
from tests.deploy_profiles.compose_lab import ComposeLab, require_compose_stack
from tests.docker.engine import PrivateEngine
from tests.k8s import migration as mig
from tests.k8s import profile_deploy as pd
from tests.k8s.cluster import REPO, delete_namespace, wait_for
from tests.k8s.test_profile_deploy import Hub, _images, _ready
from tests.support.cli import labcap
from tests.support.netpeers import PeerWatch

ENGINE_DIR = os.environ.get("LABCAP_E2E_DOCKERD", "/tmp/labcap-compose-e2e")
PROJECT = "labcapmigration"
NS, USER_NS = "ailab", "ailab-users"
ADMIN, USERS = "labadmin", ("alice", "bob")
# the load's accounts (the runbook's load-test accounts): signed up and approved on Compose
# before the backup, so they migrate with the hub's database and load both labs
LOAD_USERS = ("load-1", "load-2")
# the same measurement on each lab, one after the other (not at once: one 2-core machine)
MEASURE = ["--scenario", "lab", "--users", "2,3", "--step-duration", "60s", "--settle", "5s",
           "--window", "3s", "--spawn-rate", "2", "--gpu", "none", "--no-calibrate"]  # fmt: skip
DAMAGED_USER = "bob"
# the test cluster is Kubernetes 1.20: kubectl >= 1.31 execs over WebSockets (v5) first;
# this makes it use SPDY, which every server version has (a client setting, not a command)
KUBECTL_ENV = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
STEPS = {4: {"mlflow.log_batch": [50.0] * 100, "hub.spawn_ready": [4000.0] * 20}}


class Phases:
    def __init__(self) -> None:
        self.t0 = self.last = time.monotonic()
        self.times: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.times[name] = round(now - self.last, 1)
        self.last = now
        print(f"rehearsal: {name}: {self.times[name]} s", flush=True)


def _require_root_and_docker() -> None:
    require_compose_stack()
    assert shutil.which("kubectl"), "no kubectl: the runbook's K3s steps use it"


def _verify(args: list[str], env: dict[str, str], timeout: float = 900):
    return labcap("verify", *args, "--json", env=env, timeout=timeout)


def _diffs(result: dict) -> list[tuple[str, str]]:
    return sorted(
        (d["kind"], d["subject"]) for c in result["checks"] for d in c.get("differences", [])
    )


def test_compose_to_k3s_migration_rehearsal(k8s_netns_cluster, tmp_path):
    _require_root_and_docker()
    cluster = k8s_netns_cluster
    ph = Phases()
    engine = PrivateEngine(ENGINE_DIR)
    was_running = engine.is_running()
    docker_host = engine.start()
    env = {**os.environ, "DOCKER_HOST": docker_host, "LAB_IMAGES_GPU_NOTEBOOK": "cpu-stand-in"}
    core = cluster.core()
    for ns in (USER_NS, NS):  # leftovers of test_profile_deploy or an interrupted run
        delete_namespace(core, ns, timeout_s=180)
    pd.delete_static_pvs(cluster)

    # 1. the old lab: a Compose profile, started, with users, homes and MLflow data
    seed_run = record_run(tmp_path / "seed-run", STEPS, slos=["p95_ms=500"])
    compose_dir = tmp_path / "compose"
    build_profile(seed_run, ProfileSettings("compose", expected_users=4, admin_users=(ADMIN,)),
                  compose_dir)  # fmt: skip
    built = subprocess.run([str(REPO / "scripts" / "lab-images"), str(compose_dir)], env=env,
                           capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    lab = ComposeLab(compose_dir, PROJECT, docker_host)
    lab.write_override()
    lab.down()
    lab.remove_user_containers_and_volumes()
    ph.done("compose images")
    password = secrets.token_urlsafe(18)  # one for every account: verify's sample users share it
    forwards = []
    try:
        lab.up()
        lab.sign_up(ADMIN, password)
        admin = lab.login(ADMIN, password)
        assert admin is not None, "the admin cannot log in to the Compose lab"
        for user in (*USERS, *LOAD_USERS):
            lab.sign_up(user, password)
            lab.authorize(admin, user)
            assert lab.login(user, password) is not None, f"{user} cannot log in (Compose)"
        homes_old = {}
        for user in USERS:  # DockerSpawner's volume of the user (jupyterhub-user-{username})
            lab.docker("volume", "create", f"jupyterhub-user-{user}")
            homes_old[user] = mig.volume_dir(lab, f"jupyterhub-user-{user}")
            mig.write_home(homes_old[user], user)
        seeded = mig.seed_mlflow(lab.mlflow_url)
        ph.done("compose lab up and seeded")

        # 2. measure (a short real run), plan, and render the K3s profile from the run
        run_dir = tmp_path / "run"
        r = labcap("run", "--host", lab.mlflow_url, "--scenario", "mlflow", "--users", "1,2",
                   "--step-duration", "12s", "--settle", "2s", "--window", "2s",
                   "--no-calibrate", "--out", run_dir, env=env, timeout=300)  # fmt: skip
        assert r.returncode in (0, 1), r.stderr[-3000:]  # 1: an SLO missed, the run is whole
        plan = labcap("plan", run_dir, "--expected-users", "4")
        assert plan.returncode == 0, plan.stderr[-2000:]
        k3s_dir = tmp_path / "k3s"
        r = labcap("profile", run_dir, "--platform", "k3s", "--out", k3s_dir,
                   "--expected-users", "4", "--admin-user", ADMIN)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        runbook = k3s_dir / "RUNBOOK.md"
        # what the rollback must bring back: the old lab's data as the backup finds it
        baseline_homes = tmp_path / "baseline-homes"
        for user, path in homes_old.items():
            shutil.copytree(path, baseline_homes / user, symlinks=True)
        baseline = MlflowReader(lab.mlflow_url, artifact_checksums=True).snapshot(
            lambda _m: None, "baseline"
        )
        assert not baseline.errors, baseline.errors
        ph.done("run, plan, profile")

        # 3. K3s beside it (steps 2-4, independent of the backup: applied first, so that its
        # pods start while the backup runs): images into the cluster, the secrets from
        # Compose, apply
        built = subprocess.run([str(REPO / "scripts" / "lab-images"), str(k3s_dir)], env=env,
                               capture_output=True, text=True, timeout=1800)  # fmt: skip
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        loaded = cluster.script("load-images", docker_host, *_images(k3s_dir), timeout=1800)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        old_env = mig.env_file(compose_dir / ".env")
        secrets_yaml = k3s_dir / "secrets.yaml"
        doc = yaml.safe_load(secrets_yaml.read_text())
        for key in ("JUPYTERHUB_CRYPT_KEY", "JPY_COOKIE_SECRET"):  # step 4's first comment
            doc["stringData"][key] = old_env[key]
        secrets_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
        objects = pd.profile_objects(k3s_dir)
        pv_root = Path(cluster.kubeconfig).parent / "pv" / secrets.token_hex(4)
        pd.static_pvs(cluster, pv_root, pd.claims_of(objects),
                      pool=len(USERS) + len(LOAD_USERS) + 1, pool_size="10Gi")  # fmt: skip
        pd.apply(cluster, [pd.shrink_cpu_requests(o) for o in objects])
        ph.done("k3s images and apply")

        # 4. the runbook's step 1: writes stop, then dumps and volume copies
        backup = tmp_path / "backup"
        step1 = mig.bash_blocks(runbook, "1. Back up the Compose deployment")
        assert len(step1) == 1
        script = re.sub(r"^BACKUP=/opt/backups/.*$", ": BACKUP set by the test", step1[0],
                        count=1, flags=re.M)  # fmt: skip
        assert script != step1[0], "step 1 no longer sets BACKUP: update the substitution"
        mig.run_bash(mig.compose_prelude(lab) + script, compose_dir,
                     {**lab.env, "BACKUP": str(backup)}, "step 1 (backup)")  # fmt: skip
        for name in ("postgres_full_backup.sql", "jupyterhub.dump", "mlflow.dump",
                     "mlartifacts.tgz", *(f"jupyterhub-user-{u}.tgz" for u in USERS),
                     "compose/.env"):  # fmt: skip
            assert (backup / name).stat().st_size > 0, name
        assert not _answers(lab.hub_url), "the old hub still answers after step 1 stopped it"
        ph.done("backup")
        wait_for(lambda: _ready(cluster, NS), 600, f"every pod in {NS} Ready")
        ph.done("k3s ready")

        # 5. the runbook's step 5: restore the databases, the artifacts and the homes
        kenv = {**env, **KUBECTL_ENV, "KUBECONFIG": str(cluster.kubeconfig), "BACKUP": str(backup)}
        step5 = mig.bash_blocks(runbook, "5. Migrate the data")
        assert len(step5) == 2, "step 5: the database/artifact block and the homes block"
        for i, block in enumerate(step5):
            mig.run_bash(block, k3s_dir, kenv, f"step 5, block {i + 1}", timeout_s=900)
        wait_for(lambda: _ready(cluster, NS), 600, f"every pod in {NS} Ready after the restore")
        homes_new = {u: mig.claim_dir(cluster, USER_NS, f"claim-{u}") for u in USERS}
        ph.done("migrate (restore)")

        # 6. parallel testing: old serves again (read-only use), verify old -> new
        lab.compose("start", "hub", "proxy", "mlflow")
        lab.wait_healthy(240)
        proxy_ip = core.read_namespaced_service("proxy-public", NS).spec.cluster_ip
        mlflow_ip = core.read_namespaced_service("mlflow", NS).spec.cluster_ip
        hub_fw, mlflow_fw = cluster.forward(proxy_ip, 8000), cluster.forward(mlflow_ip, 5000)
        new_hub = f"http://127.0.0.1:{hub_fw.__enter__()}"
        forwards.append(hub_fw)
        new_mlflow = f"http://127.0.0.1:{mlflow_fw.__enter__()}"
        forwards.append(mlflow_fw)
        venv = {k: v for k, v in env.items() if not k.startswith("LABCAP_")}
        venv |= {"LABCAP_OLD_HUB_PASSWORD": password, "LABCAP_NEW_HUB_PASSWORD": password}
        args = ["--old", lab.hub_url, "--old-mlflow", lab.mlflow_url,
                "--new", new_hub, "--new-mlflow", new_mlflow,
                "--checks", "data,logins", "--sample-users", ",".join(USERS),
                "--checksums", "all",
                # no timing assertion in tests: pod spawns on this 2-core cluster are not
                # what the rehearsal checks, only that every user's spawn works on both
                "--spawn-margin", "10000%"]  # fmt: skip
        for user in USERS:
            args += ["--old-files", str(homes_old[user]), "--new-files", str(homes_new[user])]
        # 7. a damaged copy: one artifact's bytes changed (same size), one home missing.
        # Checked first: the logins check's spawns write into the K3s homes (.local, ...)
        run_id = seeded.runs[f"{mig.EXPERIMENTS[0]}/run-1"]
        store = mig.claim_dir(cluster, NS, "mlflow-artifacts")
        (weights,) = [p for p in store.rglob("weights.bin") if run_id in p.parts]
        data = bytearray(weights.read_bytes())
        data[7] ^= 0xFF
        weights.write_bytes(bytes(data))
        moved = tmp_path / "bob-home-aside"
        shutil.move(homes_new[DAMAGED_USER], moved)
        homes_new[DAMAGED_USER].mkdir()  # the claim is there, the restore of its files is not
        os.chmod(homes_new[DAMAGED_USER], 0o777)
        data_only = [a if a != "data,logins" else "data" for a in args]
        damaged = _verify(data_only, venv)
        result = mig.verify_json(damaged.stdout)
        assert damaged.returncode == 1, damaged.stderr[-3000:]
        assert result["verdict"] == "fix-before-cut-over"
        diffs = _diffs(result)
        bob_root = str(homes_new[DAMAGED_USER])
        expected_bob = {
            (f"missing-{'dir' if d else 'file'}", f"{rel} in {bob_root}") for rel, d in _tree(moved)
        }
        artifact = [d for d in diffs if not d[1].endswith(f" in {bob_root}")]
        assert set(diffs) - set(artifact) == expected_bob, diffs
        assert len(artifact) == 1, artifact
        kind, subject = artifact[0]
        assert kind == "changed-artifact" and run_id in subject, artifact
        assert subject.endswith("artifact model/weights.bin"), subject
        ph.done("verify (damaged)")
        # repaired: the copy as the runbook made it
        data[7] ^= 0xFF
        weights.write_bytes(bytes(data))
        os.rmdir(homes_new[DAMAGED_USER])
        shutil.move(moved, homes_new[DAMAGED_USER])

        # 8. verify the faithful copy: data and logins
        good = _verify(args, venv)
        result = mig.verify_json(good.stdout)
        assert good.returncode == 0, (_diffs(result), result.get("checks"), good.stderr[-3000:])
        assert result["verdict"] == "ready-to-cut-over"
        checks = {c["name"]: c for c in result["checks"]}
        assert checks["data"]["status"] == "pass" and checks["logins"]["status"] == "pass"
        mlflow_details = checks["data"]["details"]["mlflow"]
        assert mlflow_details["matched_runs_by"] == "run id"  # a dump/restore keeps the ids
        n_runs = len(seeded.runs)
        assert mlflow_details["runs"]["new"] >= n_runs, mlflow_details  # + the run's own
        files = checks["data"]["details"]["files"]
        assert [f["checksums"]["files_hashed"] for f in files] == [len(mig.HOME_FILES)] * 2
        for secret in (password, old_env["JUPYTERHUB_CRYPT_KEY"]):
            assert secret not in good.stdout + good.stderr
        ph.done("verify (clean)")

        # 9. a broken login on the new lab (bob's approval lost): verify fails, naming bob
        new_admin = Hub(new_hub)
        admin_new = new_admin.login(ADMIN, password)
        assert admin_new is not None, "the admin cannot log in to the K3s lab"
        new_admin.authorize(admin_new, DAMAGED_USER)  # NativeAuthenticator's toggle: revoked
        assert new_admin.login(DAMAGED_USER, password) is None, "bob's approval still holds"
        broken = _verify(["--old", lab.hub_url, "--new", new_hub, "--checks", "logins",
                          "--sample-users", DAMAGED_USER], venv)  # fmt: skip
        result = mig.verify_json(broken.stdout)
        assert broken.returncode == 1, broken.stderr[-3000:]
        assert _diffs(result) == [("login-failed", f"user {DAMAGED_USER}")], result["checks"]
        new_admin.authorize(admin_new, DAMAGED_USER)  # approved again
        assert new_admin.login(DAMAGED_USER, password) is not None
        ph.done("verify (broken login)")

        # 10. the same measurement on both labs, and the comparison report
        compose_run, k3s_run = _measure_both(
            lab, cluster, env, password, tmp_path, new_hub, new_mlflow
        )
        ph.done("measure both labs")
        _compare(compose_run, k3s_run, tmp_path / "compare.html")
        urls = ["--old", lab.hub_url, "--old-mlflow", lab.mlflow_url,
                "--new", new_hub, "--new-mlflow", new_mlflow]  # fmt: skip
        _verify_capacity(compose_run, k3s_run, urls, venv)
        ph.done("comparison report, verify capacity")

        # cut-over for the rollback: the old lab stopped again, users on K3s
        lab.compose("stop", "hub", "proxy", "mlflow")

        # 11. the runbook's rollback, as written
        (rollback,) = mig.bash_blocks(runbook, "Rollback")
        assert "/path/to/compose/deployment" in rollback
        rollback = rollback.replace("/path/to/compose/deployment", str(compose_dir))
        stop_k3s = (
            'sudo() { if [ "$*" = "systemctl stop k3s" ]; then '
            f"kubectl -n {NS} scale deployment hub proxy mlflow --replicas=0; "
            'else echo "unexpected sudo $*" >&2; return 1; fi; }\n'
        )
        mig.run_bash(stop_k3s + mig.compose_prelude(lab) + rollback, tmp_path,
                     {**lab.env, **KUBECTL_ENV, "KUBECONFIG": str(cluster.kubeconfig)},
                     "Rollback")  # fmt: skip
        lab.wait_healthy(240)
        after = MlflowReader(lab.mlflow_url, artifact_checksums=True).snapshot(
            lambda _m: None, "after"
        )
        # labcap's own load data (experiments labcap-*, written by the runs) left out, as
        # verify leaves it out
        lost, _ = compare_mlflow(*(drop_ignored(x, DEFAULT_IGNORE) for x in (baseline, after)))
        assert lost == [], lost
        for user in USERS:
            changed, _ = compare_trees(baseline_homes / user, homes_old[user])
            assert changed == [], changed
        session = lab.login("alice", password)
        assert session is not None, "alice cannot log in after the rollback"
        token = lab.token(session, "alice")
        r = lab.api(token, "POST", "/hub/api/users/alice/server")
        assert r.status_code in (201, 202), r.text[:300]
        server = lab.wait_ready(token, "alice")
        got = lab.api(token, "GET", f"{server['url']}api/contents/project/train.py")
        assert got.status_code == 200 and "training for alice" in got.json()["content"]
        lab.api(token, "DELETE", "/hub/api/users/alice/server")
        lab.wait_gone(token, "alice")
        ph.done("rollback")
        print(f"rehearsal phases (s): {ph.times}; total {time.monotonic() - ph.t0:.1f} s")
    finally:
        for fw in forwards:
            fw.__exit__(None, None, None)
        lab.down()
        lab.remove_user_containers_and_volumes()
        if not was_running:
            engine.stop()
        if os.environ.get("LABCAP_K8S_KEEP") != "1":
            for ns in (USER_NS, NS):
                delete_namespace(core, ns, timeout_s=180)
            pd.delete_static_pvs(cluster)


def _measure_both(lab, cluster, env, password, tmp_path, new_hub, new_mlflow):
    """`labcap run` with the same steps on the Compose lab (--target docker: DockerSpawner's
    containers) and then on the K3s lab (--target k8s: KubeSpawner's pods), as the load
    accounts; each run's platform collector must have seen the load's servers start."""
    import pandas as pd_

    users_file = tmp_path / "load-users.txt"
    users_file.write_text("\n".join(LOAD_USERS) + "\n")
    renv = {**env, "LABCAP_HUB_PASSWORD": password, "LABCAP_HUB_USERS_FILE": str(users_file)}
    runs = {}
    for name, argv in (
        ("compose", ["--host", lab.hub_url, "--mlflow-url", lab.mlflow_url, "--target",
                     "docker", "--compose-project", PROJECT]),
        ("k3s", ["--host", new_hub, "--mlflow-url", new_mlflow, "--target", "k8s",
                 "--kubeconfig", str(cluster.kubeconfig), "--namespace", USER_NS]),
    ):  # fmt: skip
        out = tmp_path / f"{name}-run"
        # the network rule, watched while the load runs: every peer of labcap, its load
        # engine, the private Docker engine and its (host-network) containers is loopback
        with PeerWatch(lambda: _local_roots(env["DOCKER_HOST"])) as watch:
            r = labcap("run", *argv, *MEASURE, "--out", out, env=renv, timeout=600)
            if name == "k3s":  # and every socket in the cluster's namespace and its pods
                net = cluster.script("check-net")
                assert net.returncode == 0, net.stderr[-3000:]
        print(f"{name} run, network: {watch.summary()}")
        assert watch.samples >= 10 and not watch.errors, watch.errors
        assert watch.offenders == [], watch.offenders
        assert password not in r.stdout + r.stderr
        assert r.returncode == 0, (name, r.returncode, r.stderr[-3000:])
        manifest = mig.verify_json((out / "manifest.json").read_text())
        # partial (a machine check, e.g. a stalled generator) still measured: reasons shown
        assert manifest["status"] in ("complete", "partial"), (name, manifest)
        print(f"{name} run: {manifest['status']} {manifest.get('status_reasons') or ''}")
        windows = pd_.read_parquet(out / "windows.parquet").groupby("endpoint")
        failed = windows["failures"].sum().to_dict()
        assert failed.get("hub.token", 0) == 0, (name, failed)  # the load's logins all work
        starts = pd_.read_parquet(out / "startup_records.parquet")
        # DockerSpawner escapes the name (jupyter-load-2d1), KubeSpawner keeps it (jupyter-load-1)
        load = starts[starts["container"].str.startswith("jupyter-load-")]
        assert len(load) >= 2 and (load["outcome"] == "ready").all(), (name, starts.to_dict())
        print(
            f"\n{name}: startup phases of the load's servers (s)\n"
            + load.drop(columns=["container_id"], errors="ignore").round(2).to_string()
        )
        runs[name] = out
    return runs["compose"], runs["k3s"]


def _local_roots(docker_host: str) -> list[int]:
    """This test's process (labcap runs below it), the private engine's dockerd (containerd
    below it) and each running container's first process (the shims are not below dockerd)."""
    sock = docker_host.removeprefix("unix://")
    roots = [os.getpid(), int((Path(sock).parent / "dockerd.pid").read_text())]
    env = {**os.environ, "DOCKER_HOST": docker_host}

    def docker(*args: str) -> list[str]:
        r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=30)
        return r.stdout.split()

    ids = docker("ps", "-q")
    pids = docker("inspect", "-f", "{{.State.Pid}}", *ids) if ids else []
    return roots + [int(p) for p in pids if p.isdigit() and p != "0"]


def _compare(compose_run: Path, k3s_run: Path, out: Path) -> None:
    """`labcap report compose-run k3s-run`: the guide's table with both labs' figures, each
    at the same user count, as the runs measured them."""
    from labcap.planner.capacity import plan_capacity
    from labcap.reports.compare import METRICS, chart_id, measured_values, reference_users
    from labcap.store import RunDir

    r = labcap("report", compose_run, k3s_run, "-o", out)
    assert r.returncode == 0, r.stderr[-3000:]
    page = out.read_text()
    runs = [RunDir.open(p) for p in (compose_run, k3s_run)]
    plans = [plan_capacity(run) for run in runs]
    ref = reference_users(plans)
    values = [measured_values(p, run, ref) for p, run in zip(plans, runs, strict=True)]
    at_ref = [{e.endpoint: e for e in p.endpoints if e.users == ref} for p in plans]
    both = sorted(
        ep for ep in set(at_ref[0]) & set(at_ref[1])
        if ep != "*" and at_ref[0][ep].p95_ms is not None and at_ref[1][ep].p95_ms is not None
    )  # fmt: skip
    assert "hub.spawn_ready" in both, f"no spawn measured on both labs at {ref} users: {both}"
    for ep in both:  # each row: K3s's figure against Compose's, at the same step, as measured
        cell = re.search(
            rf'data-base="([^"]+)"\s+data-value="([^"]+)"[^>]*data-chart="{chart_id(ep)}"'
            rf'\s+data-x="{ref}"',
            page,
        )
        assert cell, f"no {ep} cell at {ref} users in the comparison"
        wanted = (f"{at_ref[0][ep].p95_ms:.6g}", f"{at_ref[1][ep].p95_ms:.6g}")
        assert (cell[1], cell[2]) == wanted, (ep, cell.groups(), wanted)
    lines = [f"comparison at {ref} users (compose -> k3s; n = requests), the guide's claims:"]
    for m in METRICS:
        claim = f"(guide: {m.guide_docker} -> {m.guide_k3s})"
        if m.key in ("startup_p95_s", "api_p95_ms"):
            for ep in both:
                if (ep == "hub.spawn_ready") == (m.key == "startup_p95_s"):
                    a, b = at_ref[0][ep], at_ref[1][ep]
                    lines.append(f"  {m.label} {ep}: {a.p95_ms:.1f} ms (n={a.requests}) -> "
                                 f"{b.p95_ms:.1f} ms (n={b.requests}) {claim}")  # fmt: skip
        else:
            got = [v[m.key] for v in values]
            lines.append(f"  {m.label}: {got[0]} -> {got[1]} {m.unit} {claim}")
    print("\n".join(lines))


def _verify_capacity(compose_run: Path, k3s_run: Path, urls: list[str], env) -> None:
    """`labcap verify --checks capacity --capacity-runs`: the gate on the two measured runs.
    Its outcome is what the runs carry (a step of 60 s holds a handful of spawns, fewer than
    the 20 a p95 needs, so on this machine it is usually inconclusive): the test checks that
    the check judged these runs and that its status and exit code follow the gate."""
    r = _verify([*urls, "--checks", "capacity", "--capacity-runs", f"{compose_run},{k3s_run}"],
                env)  # fmt: skip
    (check,) = mig.verify_json(r.stdout)["checks"]
    assert check["details"]["runs"] == {"old": str(compose_run), "new": str(k3s_run)}, check
    outcome = check["details"]["gate"]["outcome"]
    status, code = {"pass": ("pass", 0), "regression": ("fail", 1),
                    "inconclusive": ("inconclusive", 3)}[outcome]  # fmt: skip
    assert (check["status"], r.returncode) == (status, code), (check, r.stderr[-2000:])
    print(f"verify capacity from the two runs: {check['status']}: {check['summary'][:900]}")


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/hub/login", timeout=5)
        return True
    except requests.RequestException:
        return False


def _tree(root: Path) -> list[tuple[str, bool]]:
    return [(p.relative_to(root).as_posix(), p.is_dir()) for p in sorted(root.rglob("*"))]
