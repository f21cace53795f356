"""The predictive poll schedule (shared/schedule.py) and the polls that use it: the prediction
from the step's last completed job, refinement from the training job's own progress, the
adaptive fallback without history, jobs much longer or shorter than predicted, max_polls."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from sm_stubs import NOW, endpoint, processing_job, stubbed, training_job

from functions.poll.logic import poll
from functions.validate.logic import schedule_problems
from shared.adapters.sagemaker import SageMaker
from shared.errors import PollLimitExceededError
from shared.models import PipelineInput, PollRequest
from shared.polling import wait_seconds
from shared.resources import pipeline_defaults
from shared.schedule import (
    END_POLLS,
    ScheduleSettings,
    endpoint_history,
    first_poll,
    job_first_poll,
    plan,
    training_progress,
)

SETTINGS = ScheduleSettings(
    schedule="predictive", interval=60, max_interval=600, end_interval=20, margin=0.35
)


def config(**overrides: Any) -> PipelineInput:
    data = {**pipeline_defaults(), "image_uri": "img", "raw_data_uri": "s3://bucket/data/"}
    return PipelineInput.model_validate({**data, **overrides})


def request(attempt: int, elapsed: int, expected: int | None, **extra: Any) -> PollRequest:
    return PollRequest.model_validate(
        {
            "job_name": "run-train-0123456789ab-1",
            "job_type": "training",
            "attempt": attempt,
            "poll_interval_seconds": 60,
            "max_poll_interval_seconds": 600,
            "max_polls": 60,
            "poll_schedule": "predictive",
            "end_poll_interval_seconds": 20,
            "prediction_margin": 0.35,
            "elapsed_seconds": elapsed,
            "expected_seconds": expected,
            **extra,
        }
    )


def summary(name: str, seconds: float, kind: str = "Training") -> dict[str, Any]:
    return {
        f"{kind}JobName": name,
        f"{kind}JobArn": f"arn:aws:sagemaker:us-east-1:123456789012:{kind.lower()}-job/{name}",
        f"{kind}JobStatus": "Completed",
        "CreationTime": NOW,
        f"{kind}EndTime": NOW + timedelta(seconds=seconds),
    }


def test_the_first_wait_comes_from_the_last_completed_job_of_the_step() -> None:
    # Given the step's last completed training job took 300 s, and a newer job of another
    # execution whose own name merely contains "train-" (not this step's naming)
    client, stub = stubbed("sagemaker")
    stub.add_response(
        "list_training_jobs",
        {
            "TrainingJobSummaries": [
                summary("data-train-csv-x", 30),
                summary("data-train-csv-train-0123456789ab-2", 300),
            ]
        },
        {
            "NameContains": "train-",
            "StatusEquals": "Completed",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 10,
        },
    )
    # When the training start state makes its poll state (one List call, no more)
    with stub:
        state = job_first_poll(SageMaker(client), "training", "train", "InProgress", config())
    # Then it waits until the early edge of the prediction, and carries the prediction
    assert state.expected_seconds == 300
    assert state.wait_seconds == 195  # 300 x (1 - 0.35)
    assert state.elapsed_seconds == 195
    assert "history: 300 s" in state.reason
    assert "data-train-csv-train-0123456789ab-2" in state.reason


def test_the_endpoint_update_is_predicted_from_the_last_update() -> None:
    # Given an endpoint InService since 8 minutes after its config was created
    client, stub = stubbed("sagemaker")
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "old",
            "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/old",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m"}],
            "CreationTime": NOW - timedelta(seconds=480),
        },
        {"EndpointConfigName": "old"},
    )
    described = endpoint("ep", "InService", "old")
    with stub:
        history = endpoint_history(SageMaker(client), described)
    # Then the next update's first look comes at 480 s x 0.65, capped at the max wait
    assert history == ("endpoint config old", 480.0)
    state = first_poll("InProgress", config(), history)
    assert (state.wait_seconds, state.expected_seconds) == (312, 480)


def test_without_history_the_schedule_is_the_adaptive_one() -> None:
    # Given no completed job of the step
    client, stub = stubbed("sagemaker")
    stub.add_response("list_processing_jobs", {"ProcessingJobSummaries": []})
    with stub:
        state = job_first_poll(
            SageMaker(client), "processing", "preprocess", "InProgress", config()
        )
    assert (state.wait_seconds, state.expected_seconds) == (60, None)
    assert state.reason.startswith("no history")
    # ... and every later wait is the adaptive one
    for attempt in range(1, 8):
        chosen = plan(SETTINGS, attempt=attempt, elapsed=1000 * attempt, expected=None)
        assert chosen.wait == wait_seconds(attempt, 60, 600)


def test_adaptive_setting_skips_the_history_lookup() -> None:
    client, stub = stubbed("sagemaker")  # no response queued: a call would fail the test
    with stub:
        state = job_first_poll(
            SageMaker(client), "training", "train", "InProgress", config(poll_schedule="adaptive")
        )
    stub.assert_no_pending_responses()
    assert state.wait_seconds == 60
    assert state.reason.startswith("adaptive schedule")


def _training(elapsed_rounds: int, **extra: Any) -> dict[str, Any]:
    job = training_job("run-train-0123456789ab-1", "InProgress")
    start = NOW + timedelta(seconds=100)
    job.update(
        HyperParameters={"num_round": "100"},
        TrainingStartTime=start,
        FinalMetricDataList=[
            {
                "MetricName": "progress:round",
                "Value": float(elapsed_rounds - 1),
                "Timestamp": start + timedelta(seconds=10 * elapsed_rounds),
            }
        ],
        **extra,
    )
    return job


def test_progress_moves_the_next_poll_to_the_extrapolated_end() -> None:
    # Given a training job 25 rounds of 100 in, at 10 s a round, having started training
    # 100 s after its creation (so it ends at 100 + 1000 s), predicted by history at 600 s
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_training_job", _training(25))
    with stub:
        state = poll(request(attempt=1, elapsed=350, expected=600), SageMaker(client))
    # Then the next poll comes at the progress' end, not the history's, and uncapped
    assert state.wait_seconds == 1100 - 350
    assert state.elapsed_seconds == 1100
    assert state.expected_seconds == 600  # the carried history is unchanged
    assert "progress 25/100" in state.reason
    assert "SecondaryStatus Training" in state.reason


def test_progress_is_read_from_the_describe_answer_only() -> None:
    job = _training(25)
    progress = training_progress(job)
    assert progress is not None
    assert progress.expected_total() == pytest.approx(1100)
    # four rounds say too little; no num_round, or no training start, says nothing
    assert training_progress(_training(4)) is None
    assert training_progress({**job, "HyperParameters": {}}) is None
    assert training_progress({k: v for k, v in job.items() if k != "TrainingStartTime"}) is None


def test_a_processing_poll_uses_the_carried_history() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_processing_job", processing_job("p", "InProgress"))
    with stub:
        state = poll(
            request(attempt=1, elapsed=195, expected=300, job_type="processing"),
            SageMaker(client),
        )
    assert state.wait_seconds == 20  # past the early edge: every end_poll_interval_seconds
    assert "near the expected end" in state.reason


def _detect(actual: float, expected: float | None, settings: ScheduleSettings) -> tuple[float, int]:
    """Run the schedule against a job of `actual` seconds: (lag, polls)."""
    first = plan(settings, attempt=0, elapsed=0, expected=expected)
    elapsed, polls = float(first.wait), 0
    while True:
        polls += 1
        if elapsed >= actual:
            return elapsed - actual, polls
        chosen = plan(settings, attempt=polls, elapsed=elapsed, expected=expected)
        assert chosen.wait >= 1
        elapsed += chosen.wait


@pytest.mark.parametrize("expected", [36, 360, 3600])
@pytest.mark.parametrize("factor", [0.1, 0.5, 0.7, 1.0, 1.3, 2.0, 10.0])
def test_a_job_much_longer_or_shorter_than_predicted_is_noticed_within_bounds(
    expected: int, factor: float
) -> None:
    actual = expected * factor
    lag, polls = _detect(actual, expected, SETTINGS)
    early = expected * (1 - SETTINGS.margin)
    if actual <= early:  # shorter: at most one capped wait late
        assert lag <= min(early, SETTINGS.max_interval)
    else:  # longer: the end interval, or half the overrun (capped)
        bound = max(SETTINGS.end_interval, min(SETTINGS.max_interval, (actual - early) / 2))
        assert lag <= bound
    # the polls: capped waits up to the early edge, END_POLLS near it, then the overrun
    # grows by half each poll (log) until the waits reach the cap
    overrun = max(0.0, actual - early)
    bound = (
        math.ceil(early / SETTINGS.max_interval)
        + END_POLLS
        + math.log(max(1.0, overrun / SETTINGS.end_interval), 1.5)
        + overrun / SETTINGS.max_interval
        + 2
    )
    assert polls <= bound


def test_max_polls_still_bounds_a_predicted_loop() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_training_job", _training(25))
    with stub, pytest.raises(PollLimitExceededError, match="after 60 polls"):
        poll(request(attempt=59, elapsed=500, expected=600), SageMaker(client))


def test_validate_checks_max_polls_against_the_worst_case_of_the_prediction() -> None:
    assert schedule_problems(config()) == []
    (problem,) = schedule_problems(config(max_polls=5, max_runtime_seconds=7200))
    assert problem.startswith("max_polls: 5 polls of the predictive schedule cover only")
    assert "set max_polls >= " in problem


def test_an_end_interval_above_the_max_wait_is_refused_naming_both_fields() -> None:
    with pytest.raises(ValueError, match="max_poll_interval_seconds must be >= end_poll"):
        config(max_poll_interval_seconds=60, end_poll_interval_seconds=90)
