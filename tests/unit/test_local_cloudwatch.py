"""The local cloud's alarm evaluation (sfn_mlops/local/cloudwatch.py) on moto's own alarm and
datapoint objects: statistics, M of N, TreatMissingData, StateReason wording."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from moto.cloudwatch.models import Alarm, MetricDatum

from sfn_mlops.local import cloudwatch

NOW = dt.datetime(2026, 12, 1, 12, 0, 0)
SCALE = 0.05  # a 60 s period is 3 s
DIMS = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "AllTraffic"}]


def alarm(**overrides: Any) -> Alarm:
    args: dict[str, Any] = dict(
        account_id="123456789012",
        region_name="us-east-1",
        name="a",
        namespace="AWS/SageMaker",
        metric_name="Invocation5XXErrors",
        metric_data_queries=None,
        comparison_operator="GreaterThanOrEqualToThreshold",
        evaluation_periods=3,
        datapoints_to_alarm=None,
        period=60,
        threshold=1.0,
        statistic="Sum",
        extended_statistic=None,
        description="",
        dimensions=DIMS,
        alarm_actions=[],
        ok_actions=None,
        insufficient_data_actions=None,
        unit=None,
        actions_enabled=True,
        treat_missing_data=None,
        evaluate_low_sample_count_percentile=None,
        threshold_metric_id=None,
        rule=None,
    )
    args.update(overrides)
    return Alarm(**args)


def point(
    period_ago: int, value: float, name: str = "Invocation5XXErrors", dims: Any = DIMS
) -> Any:
    """A datapoint in the period `period_ago` periods before NOW (0 = the latest)."""
    ts = NOW - dt.timedelta(seconds=3 * period_ago + 1.5)
    return MetricDatum("AWS/SageMaker", name, value, dims, ts, "None")


def verdict(a: Alarm, data: list[Any]) -> cloudwatch.Verdict:
    v = cloudwatch.evaluate(a, data, NOW, SCALE)
    assert v is not None, "not evaluated"
    return v


def test_sum_over_each_period_against_the_threshold_with_aws_wording() -> None:
    data = [point(0, 1), point(0, 1), point(1, 1), point(2, 0), point(2, 1)]

    v = verdict(alarm(), data)

    assert v.state == "ALARM"
    assert v.reason.startswith("Threshold Crossed: 3 out of the last 3 datapoints [2.0 (01/12/26")
    assert v.reason.endswith("were greater than or equal to the threshold (1.0).")
    assert v.reason_data["recentDatapoints"] == [1.0, 1.0, 2.0]  # oldest first
    assert (v.reason_data["statistic"], v.reason_data["period"]) == ("Sum", 60)


def test_below_threshold_is_ok_and_says_not() -> None:
    v = verdict(alarm(evaluation_periods=1), [point(0, 0), point(0, 0)])

    assert v.state == "OK"
    assert "1 datapoint [0.0 (01/12/26 11:59:57)] was not greater than or equal to" in v.reason


def test_m_of_n() -> None:
    a = alarm(datapoints_to_alarm=2)
    assert verdict(a, [point(0, 1), point(1, 0), point(2, 1)]).state == "ALARM"
    v = verdict(a, [point(0, 1), point(1, 0), point(2, 0)])
    assert v.state == "OK"
    alarmed = verdict(a, [point(0, 1), point(1, 1), point(2, 0)])
    assert alarmed is not None
    assert "(minimum 2 datapoints for OK -> ALARM transition)" in alarmed.reason


def test_only_the_exact_dimension_set_unit_and_range_count() -> None:
    other_dims = [{"Name": "EndpointName", "Value": "ep"}]
    stale = MetricDatum(
        "AWS/SageMaker", "Invocation5XXErrors", 9, DIMS, NOW - dt.timedelta(60), None
    )
    data = [point(0, 5, dims=other_dims), point(0, 5, name="Invocations"), stale, point(0, 0)]

    v = verdict(alarm(evaluation_periods=1), data)

    assert v.state == "OK"
    assert verdict(alarm(evaluation_periods=1, unit="Count"), data).state == "INSUFFICIENT_DATA"


@pytest.mark.parametrize(
    ("treat", "expected"),
    [
        (None, "INSUFFICIENT_DATA"),
        ("missing", "INSUFFICIENT_DATA"),
        ("ignore", None),  # keeps its current state
        ("breaching", "ALARM"),
        ("notBreaching", "OK"),
    ],
)
def test_treat_missing_data_with_no_datapoints(treat: str | None, expected: str | None) -> None:
    v = cloudwatch.evaluate(alarm(treat_missing_data=treat), [], NOW, SCALE)

    assert (v.state if v else None) == expected
    if expected == "INSUFFICIENT_DATA":
        assert v is not None
        assert v.reason == "Insufficient Data: 3 datapoints were unknown."


@pytest.mark.parametrize(
    ("treat", "expected"),
    [("missing", "ALARM"), ("ignore", "ALARM"), ("breaching", "ALARM"), ("notBreaching", "OK")],
)
def test_treat_missing_data_with_fewer_datapoints_than_needed(treat: str, expected: str) -> None:
    # 3 of 3, only the latest period has data and it breaches (AWS's table: - - X)
    v = verdict(alarm(treat_missing_data=treat), [point(0, 4)])

    assert v.state == expected


def test_missing_periods_never_turn_a_good_datapoint_into_alarm() -> None:
    v = verdict(alarm(treat_missing_data="missing"), [point(0, 0)])

    assert v.state == "OK"


def test_extended_statistic_percentile_of_latency() -> None:
    a = alarm(
        metric_name="ModelLatency",
        statistic=None,
        extended_statistic="p99",
        threshold=500_000.0,
        comparison_operator="GreaterThanThreshold",
        evaluation_periods=1,
    )
    fast = [point(0, 1000.0, name="ModelLatency") for _ in range(99)]

    assert verdict(a, fast).state == "OK"
    slow = verdict(a, [*fast, point(0, 900_000.0, name="ModelLatency")])
    assert slow.state == "OK"  # 1 slow of 100: p99 is still fast
    slow = verdict(a, [*fast, *[point(0, 900_000.0, name="ModelLatency")] * 2])
    assert slow.state == "ALARM"
    assert slow.reason_data["extendedStatistic"] == "p99"


def test_metric_math_alarms_are_left_alone() -> None:
    maths = alarm(metric_name=None, metric_data_queries=[object()])
    assert cloudwatch.evaluate(maths, [point(0, 5)], NOW, SCALE) is None


def test_period_scale_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cloudwatch.SCALE_ENV, "0.5")
    assert cloudwatch.period_scale() == 0.5
    monkeypatch.setenv(cloudwatch.SCALE_ENV, "fast")
    with pytest.raises(ValueError, match="SFN_MLOPS_ALARM_PERIOD_SCALE='fast'"):
        cloudwatch.period_scale()


def test_the_index_gives_each_window_what_a_full_scan_would_in_put_order() -> None:
    import random

    rng = random.Random(7)
    data: list[Any] = []
    index = cloudwatch.MetricIndex()
    for round_ in range(5):
        for _ in range(200):  # mostly in order, some back-dated, two metrics
            ago = rng.choice([0, 0, 0, 1, 2, 7]) + rng.random()
            name = rng.choice(["Invocation5XXErrors", "Invocations"])
            data.append(point(0, rng.random(), name=name))
            data[-1].timestamp = NOW - dt.timedelta(seconds=3 * ago) + dt.timedelta(seconds=round_)
        index.update(data)
        for name in ("Invocation5XXErrors", "Invocations", "Absent"):
            first, end = NOW - dt.timedelta(seconds=9), NOW + dt.timedelta(seconds=round_)
            want = [d for d in data if d.name == name and first <= d.timestamp < end]
            assert index.window(("AWS/SageMaker", name), first, end) == want


def test_the_index_starts_again_on_a_new_or_shorter_list() -> None:
    index = cloudwatch.MetricIndex()
    key = ("AWS/SageMaker", "Invocation5XXErrors")
    first, end = NOW - dt.timedelta(seconds=9), NOW
    old = [point(0, 1.0), point(1, 2.0)]
    index.update(old)
    assert len(index.window(key, first, end)) == 2
    index.update([point(0, 3.0)])  # moto reset: a new list
    assert [d.value for d in index.window(key, first, end)] == [3.0]
    shrunk = [point(0, 4.0), point(0, 5.0)]
    index.update(shrunk)
    del shrunk[1:]
    index.update(shrunk)  # the same list, shorter than what was read
    assert [d.value for d in index.window(key, first, end)] == [4.0]


def test_evaluate_now_sees_the_datapoints_put_between_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    backend = CloudWatchBackend("us-east-1", "123456789012")
    monkeypatch.setattr(cloudwatch, "_backend", lambda account, region: backend)
    monkeypatch.setattr(cloudwatch, "_utcnow", lambda: NOW)
    backend.alarms["a"] = alarm()
    backend.alarms["a"].state_value = "INSUFFICIENT_DATA"  # as the local cloud starts one
    evaluator = cloudwatch.AlarmEvaluator("123456789012", "us-east-1", lambda e: None, SCALE)
    backend.metric_data.extend(point(i, 0.0) for i in range(3))
    assert evaluator.evaluate_now() == ["a"]
    assert backend.alarms["a"].state_value == "OK"
    backend.metric_data.extend([point(0, 1.0), point(1, 1.0)])  # 2 of 3 breach: M of N = 3
    assert evaluator.evaluate_now() == []
    backend.metric_data.append(point(2, 1.0))
    assert evaluator.evaluate_now() == ["a"]
    assert backend.alarms["a"].state_value == "ALARM"
