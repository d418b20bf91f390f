import pytest

from labcap.deploy_profiles.sizing import ProfileSettings, measure, size
from labcap.errors import LabcapError
from labcap.planner.capacity import plan_run

from .conftest import LAB_SLOS


def _decision(sizing, key):
    return next(d for d in sizing.decisions if d.key == key)


def test_measurement_reads_capacity_and_the_spawn_curve(lab_run):
    m = measure(plan_run(str(lab_run)))
    assert m.complete and m.max_users_at_slo == 25 and m.band == (25, 50)
    assert m.spawn_slo_ms == 30000 and "hub.spawn_ready:p95_ms=30000" in m.spawn_slo_source
    assert [p.users for p in m.spawn_curve] == [10, 25, 50]
    assert [round(p.p95_ms, -2) for p in m.spawn_curve] == [4000, 9000, 40000]
    # 40 spawns in the last part of each 10 s step, all in its 8 steady seconds
    assert all(p.rps == pytest.approx(5.0) for p in m.spawn_curve)


def test_spawn_limit_is_littles_law_at_the_last_step_within_the_spawn_slo(lab_run):
    s = size(plan_run(str(lab_run)), ProfileSettings("k3s", expected_users=80))
    d = _decision(s, "hub.concurrent_spawn_limit")
    # 25 users: 5 spawns/s × 9.0 s = 45 in flight; the 50-user step is over the 30 s SLO
    assert d.value == 45
    assert "at 25 users" in d.source and "Little's law" in d.rule


def test_start_timeout_extrapolates_the_spawn_curve_past_its_last_step(lab_run):
    s = size(plan_run(str(lab_run)), ProfileSettings("k3s", expected_users=80))
    assert s.value("users.design") == 96  # 80 × 1.2
    est = _decision(s, "hub.spawn_p95_at_design_s")
    # linear from (25, 9.0 s) to (50, 40.0 s): 40 + 31/25 × 46 = 97.0 s
    assert est.value == pytest.approx(97.1, abs=0.2) and "extrapolated" in est.source
    assert s.value("hub.start_timeout_s") == 200  # 97.1 × 2, up to the next 10 s
    assert any("linear extrapolation" in w for w in s.warnings)
    assert any("over the spawn SLO" in w for w in s.warnings)


def test_start_timeout_within_the_curve_takes_the_worst_step_up_to_the_design_load(lab_run):
    s = size(plan_run(str(lab_run)), ProfileSettings("compose", expected_users=15))
    # design 18 users: the steps up to 25 users, worst p95 9.0 s -> 18 s -> floor 60 s
    assert s.value("hub.spawn_p95_at_design_s") == pytest.approx(9.0, abs=0.1)
    assert s.value("hub.start_timeout_s") == 60
    assert not any("over the spawn SLO" in w for w in s.warnings)


def test_without_expected_users_the_capacity_is_the_plan(lab_run):
    s = size(plan_run(str(lab_run)), ProfileSettings("k3s"))
    assert s.value("users.planned") == 25 and s.value("users.design") == 25
    assert "max_users_at_slo 25" in _decision(s, "users.planned").source
    assert s.value("cluster.nodes") == 1


def test_k3s_nodes_hint_and_compose_warning(lab_run):
    plan = plan_run(str(lab_run))
    k3s = size(plan, ProfileSettings("k3s", expected_users=80))
    assert k3s.value("cluster.nodes") == 4  # ceil(96 / 25)
    compose = size(plan, ProfileSettings("compose", expected_users=80))
    assert compose.value("cluster.nodes") == 1
    assert any("one Compose server is not enough" in w for w in compose.warnings)


def test_mlflow_workers_and_postgres_connections_add_up(lab_run):
    s = size(plan_run(str(lab_run)), ProfileSettings("k3s", expected_users=80))
    # 25 users: 400 of 440 events are MLflow, 39 req/s at a mean 80 ms; at 96 users
    # 150 req/s × 0.08 s = 12 in flight, × 2 headroom = 24 workers, 4 per pod
    assert s.value("mlflow.workers_total") == 24
    assert s.value("mlflow.replicas") == 6 and s.value("mlflow.workers") == 4
    # 15 (hub) + 24 × 5 + 10 = 145 -> 150
    assert s.value("postgres.max_connections") == 150
    assert s.value("postgres.shared_buffers_mb") == s.value("postgres.mem_limit_gib") * 256
    assert s.value("quota.limits_cpu") == 96 * 2.0 and s.value("quota.pods") == 96


def test_every_decision_names_its_source_and_rule(lab_run):
    s = size(
        plan_run(str(lab_run)),
        ProfileSettings("k3s", expected_users=80, gpus=2, gpu_sharing="time-slicing", gpu_users=8),
    )
    keys = [d.key for d in s.decisions]
    assert len(keys) == len(set(keys))
    for d in s.decisions:
        assert d.source and d.rule and d.unit, d
    assert s.gpu.replicas == 4 and s.value("gpu.capacity") == 8


def test_no_spawn_measured_falls_back_to_stated_defaults(tmp_path, recorded_run):
    run = recorded_run(
        tmp_path / "r", {5: {"mlflow.search_runs": [20.0] * 50}}, slos=["p95_ms=500"]
    )
    plan = plan_run(str(run))
    compose = size(plan, ProfileSettings("compose"))
    assert compose.value("hub.start_timeout_s") == 60
    assert "no hub.spawn_ready" in _decision(compose, "hub.start_timeout_s").source
    assert size(plan, ProfileSettings("k3s")).value("hub.start_timeout_s") == 300


def test_incomplete_run_still_sizes_with_expected_users_and_says_so(tmp_path, recorded_run):
    from .conftest import LAB_STEPS

    run = recorded_run(tmp_path / "r", LAB_STEPS, slos=LAB_SLOS, status="partial")
    s = size(plan_run(str(run)), ProfileSettings("k3s", expected_users=30))
    assert not s.measurement.complete
    assert s.warnings[0].startswith("sizing rests on an incomplete measurement: the run is partial")


def test_no_capacity_and_no_expected_users_is_refused(tmp_path, recorded_run):
    # every step misses the SLO: no capacity figure
    run = recorded_run(tmp_path / "r", {5: {"api.a": [900.0] * 50}}, slos=["p95_ms=500"])
    plan = plan_run(str(run))
    assert plan.max_users_at_slo == 0
    with pytest.raises(LabcapError, match="pass --expected-users N"):
        size(plan, ProfileSettings("compose"))
    s = size(plan, ProfileSettings("compose", expected_users=10))
    assert "no capacity figure" in s.warnings[0]


def test_bad_settings_are_refused(lab_run):
    plan = plan_run(str(lab_run))
    with pytest.raises(LabcapError, match="--platform 'swarm'"):
        size(plan, ProfileSettings("swarm"))
    with pytest.raises(LabcapError, match="--expected-users must be a positive"):
        size(plan, ProfileSettings("compose", expected_users=0))
    with pytest.raises(LabcapError, match="above zero"):
        size(plan, ProfileSettings("compose", cpu_per_user=0))


def test_time_slicing_for_every_design_user_sizes_to_a_few_shares_and_says_so(lab_run):
    # 100 users planned -> 120 design users, all of them GPU users by default, on 4 GPUs:
    # the old default gave 30 shares per GPU; now 4 per GPU, and the runbook says the rest wait
    s = size(
        plan_run(str(lab_run)),
        ProfileSettings("k3s", expected_users=100, gpus=4, gpu_sharing="time-slicing"),
    )
    assert s.value("gpu.users") == 120 and s.gpu.replicas == 4 and s.value("gpu.capacity") == 16
    assert any("no memory isolation" in w for w in s.warnings)
    assert any("is 30 per GPU, more than the 4 time-slicing replicas" in w for w in s.warnings)
    # an explicit --time-slicing-replicas against the default GPU users: sized, still warned
    s = size(
        plan_run(str(lab_run)),
        ProfileSettings(
            "k3s", expected_users=100, gpus=4, gpu_sharing="time-slicing", time_slicing_replicas=8
        ),
    )
    assert s.value("gpu.capacity") == 32
    assert any("at most 32 GPU servers run at once" in w for w in s.warnings)
