"""Job-level retries and redrive restarts in the poll: transient SageMaker failures become a
new attempt (bounded, with backoff), algorithm errors do not; a poll rerun by a Redrive
restarts its step instead of failing again on the old job."""

from __future__ import annotations

from typing import Any

import pytest
from sm_stubs import endpoint, stubbed, training_job

from functions.poll.logic import poll
from shared import job_retry
from shared.adapters.sagemaker import SageMaker
from shared.errors import (
    EndpointUpdateFailedError,
    JobFailedError,
    PollLimitExceededError,
    ResourceLimitError,
)
from shared.models import PollRequest, PollState
from shared.naming import attempt_of, resource_name, with_attempt

EXECUTION = "run-1"
CAPACITY = "CapacityError: Unable to provision requested ML compute capacity. Please retry."
INTERNAL = "InternalServerError: We encountered an internal error. Please try again."
ALGORITHM = "AlgorithmError: num_round must be >= 1"


def name(attempt: int) -> str:
    return resource_name(EXECUTION, "train", attempt)


def request(job: str = "", **extra: Any) -> PollRequest:
    return PollRequest.model_validate(
        {
            "job_name": job,
            "job_type": "training",
            "attempt": 2,
            "poll_interval_seconds": 30,
            "max_poll_interval_seconds": 600,
            "max_polls": 10,
            "execution_name": EXECUTION,
            **extra,
        }
    )


def run(
    req: PollRequest, *jobs: dict[str, Any], operation: str = "describe_training_job"
) -> PollState:
    client, stub = stubbed("sagemaker")
    for job in jobs:
        stub.add_response(operation, job)
    with stub:
        out = poll(req, SageMaker(client))
        stub.assert_no_pending_responses()
    return out


def test_names_carry_their_attempt() -> None:
    base, attempt = attempt_of(name(3))
    assert attempt == 3
    assert with_attempt(base, 2) == name(2)
    with pytest.raises(ValueError, match="attempt number"):
        attempt_of("no-attempt-here")


@pytest.mark.parametrize(
    ("reason", "transient"),
    [
        (CAPACITY, True),
        ("InsufficientCapacityError: no ml.m5.large capacity in us-east-1a", True),
        (INTERNAL, True),
        (ALGORITHM, False),
        ("ClientError: Please ensure the S3 prefix exists", False),
        ("an error mentioning CapacityError later: not the category", False),
        (None, False),
    ],
)
def test_only_sagemakers_transient_categories_are_transient(
    reason: str | None, transient: bool
) -> None:
    assert job_retry.is_transient(reason) is transient


def test_capacity_failure_restarts_the_step_after_a_backoff() -> None:
    # GIVEN attempt 1 of training Failed for lack of capacity
    out = run(request(name(1)), training_job(name(1), "Failed", CAPACITY))
    # THEN the poll restarts the step (its next attempt) after the first backoff
    assert out == PollState(status="Restart", attempt=0, wait_seconds=job_retry.backoff_seconds(0))
    assert (
        job_retry.backoff_seconds(0) < job_retry.backoff_seconds(1) <= job_retry.BACKOFF_MAX_SECONDS
    )


def test_second_transient_failure_backs_off_longer() -> None:
    out = run(
        request(name(2)),
        training_job(name(2), "Failed", INTERNAL),
        training_job(name(1), "Failed", CAPACITY),  # the earlier attempt, counted
    )
    assert out == PollState(status="Restart", attempt=0, wait_seconds=job_retry.backoff_seconds(1))


def test_transient_retries_are_bounded() -> None:
    # GIVEN MAX_TRANSIENT_RETRIES earlier attempts already failed transiently
    last = job_retry.MAX_TRANSIENT_RETRIES + 1
    earlier = [training_job(name(a), "Failed", CAPACITY) for a in range(last - 1, 0, -1)]
    # WHEN this attempt fails transiently too / THEN the step fails (a Redrive can go on)
    with pytest.raises(JobFailedError, match="CapacityError"):
        run(request(name(last)), training_job(name(last), "Failed", CAPACITY), *earlier)


def test_algorithm_error_is_not_retried() -> None:
    with pytest.raises(JobFailedError, match="num_round"):
        run(request(name(1)), training_job(name(1), "Failed", ALGORITHM))


def test_redriven_poll_of_a_failed_job_restarts_the_step() -> None:
    # GIVEN the execution failed at this poll (algorithm error), then was redriven
    req = request(name(1), redrive_count=1, started_redrive_count=0)
    # WHEN the redriven poll sees the same failed job / THEN the step starts its next attempt
    out = run(req, training_job(name(1), "Failed", ALGORITHM))
    assert out == PollState(
        status="Restart", attempt=0, wait_seconds=job_retry.RESTART_AFTER_REDRIVE_SECONDS
    )


def test_after_the_restart_a_failure_fails_again() -> None:
    # the next attempt was started in redrive 1: a failure of *it* is a failure
    req = request(name(2), redrive_count=1, started_redrive_count=1)
    with pytest.raises(JobFailedError):
        run(req, training_job(name(2), "Failed", ALGORITHM))


def test_redriven_poll_limit_restarts_the_step_to_follow_the_running_job() -> None:
    req = request(name(1), attempt=9, redrive_count=1, started_redrive_count=0)
    out = run(req, training_job(name(1), "InProgress"))
    assert out.status == "Restart"
    with pytest.raises(PollLimitExceededError):
        run(request(name(1), attempt=9), training_job(name(1), "InProgress"))


def test_redriven_endpoint_poll_after_a_rolled_back_update_restarts_the_update() -> None:
    base = {
        "job_name": "sfn-mlops-endpoint",
        "job_type": "endpoint",
        "expected_config_name": "new-config",
    }
    rolled_back = endpoint("sfn-mlops-endpoint", "InService", "old-config", "health check failed")
    with pytest.raises(EndpointUpdateFailedError):
        run(request(**base), rolled_back, operation="describe_endpoint")
    out = run(request(**base, redrive_count=1), rolled_back, operation="describe_endpoint")
    assert out.status == "Restart"


def test_resource_limit_at_job_start_is_a_retried_error() -> None:
    from state_machine.definition import JOB_START_RETRIES, definition

    client, stub = stubbed("sagemaker")
    stub.add_client_error(
        "create_training_job",
        service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit 'ml.m5.large for training job usage' is 2",
    )
    with stub, pytest.raises(ResourceLimitError, match="ResourceLimitExceeded"):
        SageMaker(client).create_job(
            "training",
            {
                "TrainingJobName": name(1),
                "RoleArn": "arn:aws:iam::123456789012:role/sagemaker",
                "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
                "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
                "ResourceConfig": {
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 30,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            },
        )
    # ... which every job start retries with a long backoff, a bounded number of times
    (policy,) = JOB_START_RETRIES
    assert policy["error_equals"] == ["ResourceLimitError"]
    assert policy["interval_seconds"] >= 60
    for state in ("StartPreprocessing", "StartTraining", "StartEvaluation", "UpdateEndpoint"):
        retriers = definition()["States"][state]["Retry"]
        assert any(r["ErrorEquals"] == ["ResourceLimitError"] for r in retriers), state
