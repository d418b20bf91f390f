"""A synthetic lab run with a known spawn curve and MLflow load, a fixed secret generator, and
the golden profiles' settings."""

from __future__ import annotations

import pytest

from labcap.deploy_profiles import ProfileSettings

# the golden profiles (test_render.py); other tests take a case from here by name
CASES = {
    "compose-cpu": ProfileSettings("compose", expected_users=20),
    # the rollback direction: a K3s-sized plan (80 users, shared GPUs) back on one server
    "compose-gpu-time-slicing": ProfileSettings(
        "compose", expected_users=80, gpus=2, gpu_sharing="time-slicing", gpu_users=8
    ),
    "k3s-time-slicing": ProfileSettings(
        "k3s",
        expected_users=80,
        gpus=2,
        gpu_sharing="time-slicing",
        gpu_users=10,
        domain="ailab.uni.example",
    ),
    "k3s-mig-mixed": ProfileSettings(
        "k3s",
        expected_users=40,
        gpus=2,
        gpu_sharing="mig",
        gpu_model="A100-40GB",
        mig_profiles=("1g.5gb=4", "3g.20gb=1"),
        gpu_users=10,
    ),
}


# 10 and 25 users meet every SLO; at 50 users MLflow's p95 (900 ms) and the spawn p95
# (40 s) miss theirs: capacity 25, band (25, 50). Each step is 10 s with 2 s settling;
# the spawn events come last in each step, so all of them are steady.
LAB_STEPS = {
    10: {"mlflow.log_batch": [50.0] * 200, "hub.spawn_ready": [4000.0] * 40},
    25: {"mlflow.log_batch": [80.0] * 400, "hub.spawn_ready": [9000.0] * 40},
    50: {"mlflow.log_batch": [900.0] * 400, "hub.spawn_ready": [40000.0] * 40},
}
LAB_SLOS = ["p95_ms=500", "hub.spawn_ready:p95_ms=30000", "error_pct=1"]


def placeholder_secret(name: str, kind: str) -> str:
    return f"<{name}>"


@pytest.fixture
def lab_run(tmp_path, recorded_run):
    return recorded_run(tmp_path / "lab-run", LAB_STEPS, slos=LAB_SLOS)
