import pytest

from labcap.errors import LabcapError
from labcap.model import build_plan, parse_duration, parse_user_steps, plan_from_dict, plan_to_dict
from labcap.slo import parse_slo


@pytest.mark.parametrize(
    "text,seconds",
    [("20s", 20), ("2m", 120), ("90", 90), ("1.5m", 90), ("1h", 3600), ("250ms", 0.25)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s", "0s"])
def test_parse_duration_rejects(text):
    with pytest.raises(LabcapError):
        parse_duration(text, what="--step-duration")


def test_parse_user_steps():
    assert parse_user_steps("5, 10,20") == (5, 10, 20)
    for bad in ("", "5,x", "0,5", "-1"):
        with pytest.raises(LabcapError):
            parse_user_steps(bad)


def test_parse_slo_forms():
    assert parse_slo("p95_ms=500").endpoint is None
    s = parse_slo("hub.spawn_ready:p95_ms=15000")
    assert (s.endpoint, s.metric, s.threshold) == ("hub.spawn_ready", "p95_ms", 15000)
    assert s.expression == "hub.spawn_ready:p95_ms=15000"
    assert parse_slo("error_pct=1.5").threshold == 1.5


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("p95=500", "unknown metric"),
        ("p95_ms=fast", "not a number"),
        ("p95_ms", "malformed"),
        ("hub.login:error_pct=1", "whole step"),
        ("p95_ms=-1", "finite"),
        ("p95_ms=nan", "finite"),
    ],
)
def test_parse_slo_rejects_with_reason(text, fragment):
    with pytest.raises(LabcapError, match=fragment):
        parse_slo(text)


def test_plan_windows_cover_each_step_and_split_at_settling():
    plan = build_plan((2, 4, 8), 20, settle_s=7, window_s=5, spawn_rate=2)
    assert [s.users for s in plan.steps] == [2, 4, 8]
    assert plan.duration_s == 60
    for step in plan.steps:
        ws = [w for w in plan.windows if w.step_index == step.index]
        assert ws[0].start_s == step.start_s and ws[-1].end_s == step.end_s
        for a, b in zip(ws, ws[1:], strict=False):
            assert a.end_s == b.start_s  # contiguous, no gaps
        settling = [w for w in ws if w.settling]
        assert settling[-1].end_s == step.start_s + 7
        assert all(not w.settling for w in ws if w.start_s >= step.start_s + 7)
        assert all(w.end_s - w.start_s <= 5 for w in ws)
    assert [w.index for w in plan.windows] == list(range(len(plan.windows)))


def test_plan_round_trips_through_manifest_dict():
    plan = build_plan((1, 3), 12, settle_s=3, window_s=4, spawn_rate=1.5)
    again = plan_from_dict(plan_to_dict(plan))
    assert again == plan


def test_settle_must_be_shorter_than_step():
    with pytest.raises(LabcapError, match="settling"):
        build_plan((1,), 10, settle_s=10, window_s=5, spawn_rate=1)
