import pytest

from labcap.deploy_profiles.gpu import (
    DEFAULT_TIME_SLICING_REPLICAS,
    MIG_MODELS,
    parse_mig_profile,
    plan_gpus,
)
from labcap.errors import LabcapError


def test_no_gpus_is_a_plain_plan_and_sharing_without_gpus_is_refused():
    plan = plan_gpus(0, "none", 0)
    assert not plan.enabled and plan.resource_names == () and plan.device_pool() == ()
    with pytest.raises(LabcapError, match="needs GPUs"):
        plan_gpus(0, "time-slicing", 0)
    with pytest.raises(LabcapError, match="--gpus is 0"):
        plan_gpus(0, "none", 3)


def test_whole_gpus_serve_one_user_each():
    plan = plan_gpus(4, "none", 4)
    assert plan.capacity == 4 and plan.device_pool() == ("0", "1", "2", "3")
    with pytest.raises(LabcapError, match=r"5 planned concurrent GPU users but only 4 whole"):
        plan_gpus(4, "none", 5)


def test_time_slicing_replicas_times_gpus_must_cover_the_gpu_users():
    plan = plan_gpus(2, "time-slicing", 8, replicas=4)
    assert plan.capacity == 8 and plan.resource_counts() == (("nvidia.com/gpu", 8),)
    # the pool alternates GPUs so that users spread over them
    assert plan.device_pool()[:4] == ("0", "1", "0", "1") and len(plan.device_pool()) == 8
    with pytest.raises(LabcapError) as e:
        plan_gpus(2, "time-slicing", 9, replicas=4)
    assert "replicas 4 × 2 GPU(s) = 8 GPU shares, fewer than the 9 planned" in str(e.value)
    assert "--time-slicing-replicas to 5" in str(e.value)


def test_time_slicing_replicas_are_derived_when_not_given():
    plan = plan_gpus(3, "time-slicing", 10)
    assert plan.replicas == 4 and plan.capacity == 12
    assert plan_gpus(4, "time-slicing", 1).replicas == 2  # sharing means two or more
    assert plan_gpus(2, "time-slicing", 6).replicas == 3  # no more shares than GPU users
    with pytest.raises(LabcapError, match="one replica per GPU is no sharing"):
        plan_gpus(2, "time-slicing", 2, replicas=1)


def test_time_slicing_default_is_a_few_replicas_per_gpu_not_one_per_user():
    # 120 users on 4 GPUs: not 30 shares per GPU but NVIDIA's example 4, with the shortfall said
    plan = plan_gpus(4, "time-slicing", 120, gpu_model="H100-80GB")
    assert plan.replicas == DEFAULT_TIME_SLICING_REPLICAS == 4
    assert plan.capacity == 16 and plan.resource_counts() == (("nvidia.com/gpu", 16),)
    memory, shortfall = plan.warnings
    assert "no memory isolation" in memory and "all 80 GB of the H100-80GB, not 20 GB" in memory
    assert "120 GPU users on 4 GPU(s) is 30 per GPU, more than the 4 time-slicing replicas" in (
        shortfall
    )
    assert "at most 16 GPU servers run at once" in shortfall
    assert "--time-slicing-replicas towards 30" in shortfall
    assert set(plan.warnings) <= set(plan.notes) and plan.to_dict()["notes"] == list(plan.notes)


def test_time_slicing_below_the_default_gpu_users_is_a_warning_not_an_error():
    # the GPU users are labcap's default (every design user): an explicit R sizes, and warns
    plan = plan_gpus(2, "time-slicing", 20, replicas=3, gpu_users_given=False)
    assert plan.capacity == 6 and "at most 6 GPU servers run at once" in plan.warnings[-1]
    # both given and contradicting: refused as before
    with pytest.raises(LabcapError, match="fewer than the 20 planned concurrent GPU users"):
        plan_gpus(2, "time-slicing", 20, replicas=3)
    # enough shares: only the memory caveat, no model memory figure without a model
    plan = plan_gpus(2, "time-slicing", 6)
    assert len(plan.warnings) == 1 and "no memory isolation" in plan.warnings[0]
    assert " GB" not in plan.warnings[0]


def test_mig_single_strategy_fills_each_gpu_with_one_profile():
    plan = plan_gpus(2, "mig", 14, gpu_model="H100-80GB", mig_profiles=("1g.10gb",))
    assert plan.mig_strategy == "single" and plan.mig_devices == (("1g.10gb", 7),)
    assert plan.capacity == 14 and plan.resource_names == ("nvidia.com/gpu",)
    assert plan.device_pool()[:3] == ("0:0", "1:0", "0:1")


def test_mig_mixed_strategy_exposes_one_resource_per_profile():
    plan = plan_gpus(2, "mig", 10, gpu_model="A100-40GB", mig_profiles=("1g.5gb=4", "3g.20gb=1"))
    assert plan.mig_strategy == "mixed" and plan.capacity == 10
    assert plan.resource_counts() == (
        ("nvidia.com/mig-1g.5gb", 8),
        ("nvidia.com/mig-3g.20gb", 2),
    )


def test_mig_profile_must_exist_for_the_gpu_model():
    with pytest.raises(LabcapError) as e:
        plan_gpus(1, "mig", 1, gpu_model="H100-80GB", mig_profiles=("1g.5gb",))
    msg = str(e.value)
    assert "'1g.5gb' does not exist on H100-80GB" in msg and "1g.10gb, 1g.20gb" in msg
    with pytest.raises(LabcapError, match="MIG models: A100-40GB"):
        plan_gpus(1, "mig", 1, gpu_model="T4", mig_profiles=("1g.5gb",))
    with pytest.raises(LabcapError, match="needs --gpu-model"):
        plan_gpus(1, "mig", 1, mig_profiles=("1g.5gb",))


def test_too_many_mig_slices_are_refused():
    with pytest.raises(LabcapError, match=r"8 × 1g.5gb per GPU, but a A100-40GB holds at most 7"):
        plan_gpus(1, "mig", 1, gpu_model="A100-40GB", mig_profiles=("1g.5gb=8",))
    # each profile fits alone, together they need 10 compute and 12 memory slices of 7 and 8
    with pytest.raises(LabcapError, match=r"needs 10 compute and 12 memory slices"):
        plan_gpus(1, "mig", 1, gpu_model="A100-40GB", mig_profiles=("1g.5gb=4", "3g.20gb=2"))
    # 3g + 3g + 1g: compute fits (7) but memory does not (9 of 8)
    with pytest.raises(LabcapError, match="too many MIG slices"):
        plan_gpus(1, "mig", 1, gpu_model="A100-80GB", mig_profiles=("3g.40gb=2", "1g.10gb=1"))
    # 4g + 2g + 1g fits
    plan_gpus(
        1, "mig", 3, gpu_model="A100-40GB", mig_profiles=("4g.20gb=1", "2g.10gb=1", "1g.5gb=1")
    )


def test_mig_devices_must_cover_the_gpu_users():
    with pytest.raises(LabcapError, match="= 4 MIG devices, fewer than the 5 planned"):
        plan_gpus(2, "mig", 5, gpu_model="A100-80GB", mig_profiles=("3g.40gb",))


def test_options_of_another_sharing_mode_are_refused():
    with pytest.raises(LabcapError, match="--mig-profile needs --gpu-sharing mig"):
        plan_gpus(1, "time-slicing", 2, mig_profiles=("1g.5gb",))
    with pytest.raises(LabcapError, match="--time-slicing-replicas needs"):
        plan_gpus(1, "mig", 1, replicas=2, gpu_model="A100-40GB", mig_profiles=("7g.40gb",))


def test_mig_table_sums_to_whole_gpus():
    for model in MIG_MODELS.values():
        biggest = max(model.profiles, key=lambda p: p.compute_slices)
        assert biggest.compute_slices == model.compute_slices
        assert biggest.memory_slices == model.memory_slices and biggest.max_instances == 1
        for p in model.profiles:  # the max instances of any profile alone fit the GPU
            assert p.compute_slices * p.max_instances <= model.compute_slices
            assert p.memory_slices * p.max_instances <= model.memory_slices


def test_parse_mig_profile():
    assert parse_mig_profile("1g.10gb") == ("1g.10gb", None)
    assert parse_mig_profile(" 2g.20gb=3 ") == ("2g.20gb", 3)
    for bad in ("", "=2", "1g.10gb=0", "1g.10gb=x"):
        with pytest.raises(LabcapError):
            parse_mig_profile(bad)
