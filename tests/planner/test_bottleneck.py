"""planner.bottleneck on journaled runs (the real WindowRecorder): latency growth names a
component when no resource samples exist; the real-engine, resource-based case is
tests/docker/test_bottleneck.py."""

from __future__ import annotations

from labcap.planner.bottleneck import attribute, component_of_container, component_of_endpoint
from labcap.planner.capacity import plan_run
from labcap.planner.recommend import plan_and_recommend


def _many(ms: float, n: int = 100) -> list[float]:
    return [ms + (i % 5) for i in range(n)]


def test_components_by_name_and_endpoint():
    assert component_of_container("lab-hub-1", "hub") == "hub"
    assert component_of_container("jupyter-alice") == "user-servers"
    assert component_of_container("lab-postgres-1") == "database"
    assert component_of_container("lab-proxy-1", "proxy") == "proxy"
    assert component_of_container("mlflow") == "mlflow"
    assert component_of_container("redis") is None
    assert component_of_endpoint("hub.spawn_ready") == "spawner"
    assert component_of_endpoint("hub.login") == "hub"
    assert component_of_endpoint("mlflow.search_runs") == "mlflow"
    assert component_of_endpoint("kernel.execute") == "user-servers"


def test_latency_growth_names_the_component_whose_endpoints_slow_down(tmp_path, recorded_run):
    steps = {
        5: {"hub.login": _many(20), "mlflow.search": _many(30)},
        10: {"hub.login": _many(60), "mlflow.search": _many(32)},
        20: {"hub.login": _many(900), "mlflow.search": _many(35)},
    }
    run = recorded_run(tmp_path / "r", steps, slos=["p95_ms=500"])
    neck = attribute(plan_run(str(run)))
    assert neck.component == "hub" and neck.scales_out is False and neck.basis == "latency"
    assert neck.at_users == 20 and "hub.login p95" in neck.evidence[0]
    assert "latency evidence only" in neck.evidence[1]
    out = plan_and_recommend(run, expected_users=40)
    assert out.bottleneck is not None and out.bottleneck.component == "hub"
    # latency alone does not tell a saturated hub from a host every component shares: the
    # policy hears "unknown", and the K3s sizing warns instead of withholding nodes
    rec = out.recommendation
    assert rec.measurements["bottleneck"] == "hub"
    assert rec.measurements["bottleneck_scales_out"] == "unknown"
    assert "bottleneck-does-not-scale-out" not in {r.rule for r in rec.reasons}
    assert "resource samples (--target docker) would tell" in out.bottleneck.summary()
    from labcap.deploy_profiles.sizing import ProfileSettings, size

    sizing = size(out.capacity, ProfileSettings(platform="k3s", expected_users=40), neck)
    assert next(d for d in sizing.decisions if d.key == "cluster.nodes").value > 1
    assert any("latency evidence alone" in w for w in sizing.warnings)


def test_a_bottleneck_that_scales_out_keeps_the_node_count(tmp_path, recorded_run):
    from labcap.deploy_profiles.sizing import ProfileSettings, size

    steps = {
        5: {"hub.login": _many(20), "mlflow.search": _many(30)},
        10: {"hub.login": _many(21), "mlflow.search": _many(900)},
    }
    run = recorded_run(tmp_path / "r", steps, slos=["p95_ms=500"])
    plan = plan_run(str(run))
    neck = attribute(plan)
    assert neck.component == "mlflow" and neck.scales_out is True
    sizing = size(plan, ProfileSettings(platform="k3s", expected_users=40), neck)
    nodes = next(d for d in sizing.decisions if d.key == "cluster.nodes")
    assert nodes.value == 10 and nodes.rule.startswith("ceil(")  # 48 design users / 5
    out = plan_and_recommend(run, expected_users=40).recommendation
    assert "multi-node-needed" in {r.rule for r in out.reasons}


def test_no_evidence_no_bottleneck(tmp_path, recorded_run):
    run = recorded_run(tmp_path / "r", {5: {"api.a": _many(20)}}, slos=["p95_ms=500"])
    neck = attribute(plan_run(str(run)))
    assert neck.component is None and neck.scales_out is None
    rec = plan_and_recommend(run, expected_users=4).recommendation
    assert rec.measurements["bottleneck"] == "unknown"
