"""Rendered profiles: golden files, validation, refusals that write nothing, secrets.

Regenerate the golden files after an intended change with
``LABCAP_UPDATE_GOLDEN=1 .venv/bin/pytest tests/deploy_profiles`` and review the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from labcap import __version__
from labcap.deploy_profiles import ProfileSettings, build_profile, render_profile
from labcap.deploy_profiles import validate as v
from labcap.deploy_profiles.render import DEFAULT_PASSWORDS, SECRET_SPECS
from labcap.errors import LabcapError
from labcap.planner.capacity import plan_run

from .conftest import CASES, placeholder_secret

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("LABCAP_UPDATE_GOLDEN") == "1"


def _normalise(text: str, run: Path) -> str:
    text = text.replace(str(run), "<RUN>")
    # versions of labcap and of the schema package move on without the output changing
    text = re.sub(r"kubernetes-validate [0-9.]+", "kubernetes-validate <VERSION>", text)
    return text.replace(f'"labcap_version": "{__version__}"', '"labcap_version": "<VERSION>"')


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_profile_matches_golden_files(case, lab_run, tmp_path):
    out = tmp_path / "out"
    profile = build_profile(lab_run, CASES[case], out, secret_factory=placeholder_secret)
    golden = GOLDEN / case
    rendered = {f.path: _normalise(f.content, lab_run) for f in profile.files}
    if UPDATE:
        shutil.rmtree(golden, ignore_errors=True)
        for path, text in rendered.items():
            (golden / path).parent.mkdir(parents=True, exist_ok=True)
            (golden / path).write_text(text)
    expected = {str(p.relative_to(golden)): p.read_text() for p in golden.rglob("*") if p.is_file()}
    assert sorted(rendered) == sorted(expected), "file set differs: LABCAP_UPDATE_GOLDEN=1"
    for path, text in rendered.items():
        assert text == expected[path], f"{case}/{path} differs from its golden file"
    # what was written is what was rendered
    for f in profile.files:
        assert (out / f.path).read_text() == f.content


@pytest.mark.parametrize("case", [c for c in sorted(CASES) if c.startswith("k3s")])
def test_every_written_k3s_manifest_validates_against_the_kubernetes_schemas(
    case, lab_run, tmp_path
):
    out = tmp_path / "out"
    build_profile(lab_run, CASES[case], out)
    objects = [
        (str(p), doc)
        for p in sorted([*out.glob("manifests/*.yaml"), out / "secrets.yaml"])
        for doc in yaml.safe_load_all(p.read_text())
        if doc
    ]
    kinds = {o["kind"] for _, o in objects}
    assert {
        "Namespace",
        "Deployment",
        "StatefulSet",
        "Service",
        "Ingress",
        "PersistentVolumeClaim",
        "ResourceQuota",
        "LimitRange",
        "RuntimeClass",
        "ConfigMap",
        "DaemonSet",
        "Secret",
    } <= kinds
    assert v.validate_k8s(objects) == len(objects)
    runtime = next(o for _, o in objects if o["kind"] == "RuntimeClass")
    assert runtime["metadata"]["name"] == "nvidia" and runtime["handler"] == "nvidia"


def test_time_slicing_device_plugin_config(lab_run, tmp_path):
    build_profile(lab_run, CASES["k3s-time-slicing"], tmp_path / "o")
    docs = list(
        yaml.safe_load_all((tmp_path / "o/manifests/20-nvidia-device-plugin.yaml").read_text())
    )
    config = yaml.safe_load(docs[0]["data"]["config.yaml"])
    assert config == {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {
            "timeSlicing": {
                "failRequestsGreaterThanOne": True,
                # 10 GPU users on 2 GPUs: labcap's default 4 shares per GPU, not 5
                "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
            }
        },
    }
    quota = yaml.safe_load(
        (tmp_path / "o/manifests/80-user-quota.yaml").read_text().split("---")[0]
    )
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "8"
    runbook = (tmp_path / "o/RUNBOOK.md").read_text()
    read_first = runbook.split("**Read first:**")[1].split("## ")[0]
    assert "no memory isolation" in read_first
    assert "at most 8 GPU servers run at once" in read_first


def test_mig_device_plugin_and_mig_parted_configs(lab_run, tmp_path):
    build_profile(lab_run, CASES["k3s-mig-mixed"], tmp_path / "o")
    plugin = next(
        yaml.safe_load_all((tmp_path / "o/manifests/20-nvidia-device-plugin.yaml").read_text())
    )
    assert yaml.safe_load(plugin["data"]["config.yaml"]) == {
        "version": "v1",
        "flags": {"migStrategy": "mixed"},
    }
    parted = yaml.safe_load((tmp_path / "o/manifests/21-mig-parted-config.yaml").read_text())
    assert yaml.safe_load(parted["data"]["config.yaml"])["mig-configs"]["labcap"] == [
        {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 4, "3g.20gb": 1}}
    ]
    hub = (tmp_path / "o/manifests/50-hub.yaml").read_text()
    assert '"nvidia.com/mig-1g.5gb": "1"' in hub and '"nvidia.com/mig-3g.20gb": "1"' in hub


def test_compose_profile_passes_its_validator_and_reserves_gpus(lab_run, tmp_path):
    out = tmp_path / "o"
    build_profile(lab_run, CASES["compose-gpu-time-slicing"], out)
    text = (out / "docker-compose.yml").read_text()
    env = v.parse_env((out / ".env").read_text())
    v.validate_compose("docker-compose.yml", text, env)
    doc = yaml.safe_load(text)
    devices = doc["services"]["gpu-check"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": ["gpu"]}]
    for name in ("postgres", "proxy", "hub", "mlflow"):
        svc = doc["services"][name]
        assert svc["restart"] == "unless-stopped" and "healthcheck" in svc
        assert {"cpus", "memory"} <= set(svc["deploy"]["resources"]["limits"])
    # fixed names, as the runbook's backup commands use them (the hub keeps no state on disk)
    assert {k: x["name"] for k, x in doc["volumes"].items()} == {
        "pgdata": "ailab_pgdata",
        "mlartifacts": "ailab_mlartifacts",
    }
    # the spawner's pool: 2 GPUs × 4 shares, alternating
    assert (
        'GPU_DEVICE_POOL = ["0", "1", "0", "1", "0", "1", "0", "1"]'
        in (out / "jupyterhub_config.py").read_text()
    )


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["services"]["hub"].pop("healthcheck"), "has no health check"),
        (lambda d: d["services"]["mlflow"].update(restart="no"), "no restart policy"),
        (lambda d: d["services"]["hub"]["deploy"]["resources"].pop("limits"), "CPU and memory"),
        (
            lambda d: d["services"]["hub"].update(
                depends_on={"db": {"condition": "service_healthy"}}
            ),
            "unknown service 'db'",
        ),
        (lambda d: d["services"]["hub"].update(volumes=["userdata:/x"]), "undeclared volume"),
        (
            lambda d: d["services"]["hub"].update(ports="8000"),
            "Compose spec schema at services.hub.ports",
        ),
        (lambda d: d["services"]["hub"].update(gpus="all"), "Compose spec schema at services.hub"),
        (
            lambda d: d["services"]["mlflow"].update(environment={"X": "${NOT_IN_ENV}"}),
            r"\$\{NOT_IN_ENV\} is not defined in .env",
        ),
    ],
)
def test_compose_validator_catches_broken_files(mutate, message, lab_run, tmp_path):
    out = tmp_path / "o"
    build_profile(lab_run, CASES["compose-cpu"], out)
    doc = yaml.safe_load((out / "docker-compose.yml").read_text())
    env = v.parse_env((out / ".env").read_text())
    mutate(doc)
    with pytest.raises(v.ProfileValidationError, match=message):
        v.validate_compose("docker-compose.yml", yaml.safe_dump(doc), env)


def test_kubernetes_validation_catches_broken_objects(lab_run, tmp_path):
    out = tmp_path / "o"
    build_profile(lab_run, CASES["k3s-time-slicing"], out)
    docs = list(yaml.safe_load_all((out / "manifests/40-mlflow.yaml").read_text()))
    ns = list(yaml.safe_load_all((out / "manifests/00-namespaces.yaml").read_text()))
    deploy = docs[2]
    deploy["spec"]["replicas"] = "three"
    with pytest.raises(v.ProfileValidationError, match=r"Deployment/mlflow .* at spec.replicas"):
        v.validate_k8s([("m.yaml", deploy)])
    deploy["spec"]["replicas"] = 1
    deploy["spec"]["template"]["spec"]["containers"][0]["cpuLimit"] = 2  # unknown field
    with pytest.raises(v.ProfileValidationError, match="does not validate"):
        v.validate_k8s([("m.yaml", deploy)])
    del deploy["spec"]["template"]["spec"]["containers"][0]["cpuLimit"]
    # cross-references: the PVC it mounts and the Secret it reads are not in this set
    with pytest.raises(v.ProfileValidationError, match="PersistentVolumeClaim 'mlflow-artifacts'"):
        v.validate_k8s([(f"x{i}", o) for i, o in enumerate([*ns, deploy])])
    svc = docs[1]
    svc["spec"]["selector"] = {"app.kubernetes.io/name": "nothing"}
    with pytest.raises(v.ProfileValidationError, match="matches no pod template"):
        v.check_references([("m.yaml", o) for o in [*ns, docs[0], svc]])


@pytest.mark.parametrize(
    "settings, reason",
    [
        (
            ProfileSettings(
                "k3s",
                expected_users=40,
                gpus=2,
                gpu_sharing="time-slicing",
                gpu_users=20,
                time_slicing_replicas=4,
            ),
            "replicas 4 × 2 GPU(s) = 8 GPU shares, fewer than the 20 planned concurrent GPU users",
        ),
        (
            ProfileSettings(
                "k3s",
                expected_users=40,
                gpus=1,
                gpu_sharing="mig",
                gpu_model="H100-80GB",
                mig_profiles=("1g.5gb",),
                gpu_users=4,
            ),
            "MIG profile '1g.5gb' does not exist on H100-80GB",
        ),
        (
            ProfileSettings(
                "compose",
                expected_users=40,
                gpus=1,
                gpu_sharing="mig",
                gpu_model="A100-40GB",
                mig_profiles=("1g.5gb=7", "2g.10gb=1"),
                gpu_users=4,
            ),
            "too many MIG slices",
        ),
        (ProfileSettings("k3s", expected_users=40, gpus=2), "only 2 whole GPU"),
        (ProfileSettings("k3s", expected_users=40, domain="Lab Server"), "not a host name"),
    ],
)
def test_inconsistent_requests_are_refused_and_nothing_is_written(
    settings, reason, lab_run, tmp_path
):
    out = tmp_path / "out"
    with pytest.raises(LabcapError, match=re.escape(reason)):
        build_profile(lab_run, settings, out)
    assert not out.exists()
    out.mkdir()
    with pytest.raises(LabcapError):
        build_profile(lab_run, settings, out)
    assert list(out.iterdir()) == []


def test_a_validation_failure_writes_nothing(lab_run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise v.ProfileValidationError("manifests/40-mlflow.yaml: broken on purpose")

    monkeypatch.setattr(v, "validate_k8s", broken)
    with pytest.raises(LabcapError, match="broken on purpose"):
        build_profile(lab_run, CASES["k3s-time-slicing"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _secrets_of(out: Path) -> dict[str, str]:
    if (out / ".env").exists():
        env = v.parse_env((out / ".env").read_text())
    else:
        env = yaml.safe_load((out / "secrets.yaml").read_text())["stringData"]
    return {k: env[k] for k, _ in SECRET_SPECS}


@pytest.mark.parametrize(
    "case, secret_file", [("compose-cpu", ".env"), ("k3s-time-slicing", "secrets.yaml")]
)
def test_secrets_are_random_private_and_never_defaults(case, secret_file, lab_run, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_profile(lab_run, CASES[case], a)
    build_profile(lab_run, CASES[case], b)
    sa, sb = _secrets_of(a), _secrets_of(b)
    assert all(len(x) >= 40 for x in sa.values())
    assert all(sa[k] != sb[k] for k in sa), "two renders must not share a secret"
    assert len(set(sa.values())) == len(sa)
    assert stat.S_IMODE((a / secret_file).stat().st_mode) == 0o600
    for path in a.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        if path.name != secret_file:
            for value in sa.values():
                assert value not in text, f"a secret leaked into {path.name}"
        for word in ("changeme", "change-me", "password123", "hunter2", "admin:admin"):
            assert word not in text.lower(), f"{word!r} in {path.name}"
    for value in sa.values():
        assert value.lower() not in DEFAULT_PASSWORDS


def test_re_rendering_keeps_the_secrets_and_removes_stale_files(lab_run, tmp_path):
    out = tmp_path / "out"
    build_profile(lab_run, CASES["k3s-mig-mixed"], out)
    first = _secrets_of(out)
    assert (out / "manifests/21-mig-parted-config.yaml").exists()
    text = (out / "secrets.yaml").read_text()
    edited = text.replace('HUB_ADMIN_USER: "admin"', 'HUB_ADMIN_USER: "ada"')
    (out / "secrets.yaml").write_text(edited)
    build_profile(lab_run, CASES["k3s-time-slicing"], out)
    assert _secrets_of(out) == first  # the database keeps its password
    assert (
        yaml.safe_load((out / "secrets.yaml").read_text())["stringData"]["HUB_ADMIN_USER"] == "ada"
    )
    assert stat.S_IMODE((out / "secrets.yaml").stat().st_mode) == 0o600
    assert not (out / "manifests/21-mig-parted-config.yaml").exists()
    with pytest.raises(LabcapError, match="holds a k3s profile"):
        build_profile(lab_run, CASES["compose-cpu"], out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(LabcapError, match="holds no labcap profile"):
        build_profile(lab_run, CASES["compose-cpu"], other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_incomplete_run_is_flagged_in_sizing_and_runbook(tmp_path, recorded_run):
    from .conftest import LAB_SLOS, LAB_STEPS

    run = recorded_run(tmp_path / "r", LAB_STEPS, slos=LAB_SLOS, status="partial")
    profile = build_profile(run, ProfileSettings("compose", expected_users=20), tmp_path / "o")
    import json

    sizing = json.loads((tmp_path / "o/sizing.json").read_text())
    assert sizing["measurement"]["complete"] is False
    assert sizing["warnings"][0].startswith("sizing rests on an incomplete measurement")
    assert "sizing rests on an incomplete measurement" in profile.file("RUNBOOK.md").content


def test_runbook_carries_the_checklist_and_this_labs_numbers(lab_run, tmp_path):
    p = render_profile(
        plan_run(str(lab_run)), CASES["k3s-time-slicing"], secret_factory=placeholder_secret
    )
    book = p.file("RUNBOOK.md").content
    for item in (
        "stable for 2+ weeks",
        "Backup procedures tested",
        "Users notified",
        "DNS changes planned",
        "Rollback plan documented",
        "4-hour maintenance window",
    ):
        assert item in book
    for check in ("**Logins**", "**GPU access**", "**Data integrity**"):
        assert check in book
    assert "25 users (between 25 and 50" in book  # measured capacity and band
    assert "| planned concurrent users | 80 |" in book
    assert "4.0 s at 10, 9.0 s at 25, 40.0 s at 50" in book  # the spawn curve
    assert "ailab.uni.example" in book and "## Rollback" in book
    compose = render_profile(
        plan_run(str(lab_run)), CASES["compose-gpu-time-slicing"], secret_factory=placeholder_secret
    )
    assert compose.file("RUNBOOK.md").content.startswith("# Runbook: K3s → Docker Compose")


@pytest.mark.parametrize(
    "settings, message",
    [
        (ProfileSettings("compose", admin_users=("Bad Name",)), "--admin-user"),
        (ProfileSettings("compose", images=(("notebook", "x/y:latest"),)), "not :latest"),
        (ProfileSettings("compose", images=(("nope", "x/y:1"),)), "unknown image"),
        (ProfileSettings("compose", idle_timeout_s=5), "--idle-timeout"),
    ],
)
def test_bad_profile_options_are_refused_before_rendering(lab_run, settings, message):
    with pytest.raises(LabcapError, match=message):
        render_profile(plan_run(str(lab_run)), settings, secret_factory=placeholder_secret)


def test_compose_options_reach_the_files(lab_run):
    settings = ProfileSettings(
        "compose",
        gpus=1,
        gpu_users=1,
        admin_users=("ada", "bo"),
        idle_timeout_s=900,
        images=(("notebook", "quay.io/jupyter/scipy-notebook:2024-12-02"),),
    )
    p = render_profile(plan_run(str(lab_run)), settings, secret_factory=placeholder_secret)
    env = v.parse_env(p.file(".env").content)
    assert env["HUB_ADMIN_USER"] == "ada,bo"
    assert env["NOTEBOOK_IMAGE"] == "quay.io/jupyter/scipy-notebook:2024-12-02"
    assert env["GPU_NOTEBOOK_IMAGE"].endswith(":cuda12-hub-5.2.1")
    config = p.file("jupyterhub_config.py").content
    assert '"--timeout=900"' in config and "c.JupyterHub.cleanup_servers = False" in config
    assert "c.Authenticator.allow_all = True" in config
    # the GPU hook gives a share only to the "GPU share" choice; CPU-only is the default
    assert 'if spawner.user_options.get("image") != GPU_CHOICE:' in config
