"""poll: job/endpoint status -> PollState with an adaptive wait; named errors for
Failed/Stopped/rolled-back/exhausted (Stubber: moto jobs are Completed at once)."""

from __future__ import annotations

from typing import Any

import pytest
from sm_stubs import endpoint, not_found, processing_job, stubbed, training_job

from functions.poll.handler import lambda_handler
from functions.poll.logic import poll
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.errors import (
    EndpointUpdateFailedError,
    JobFailedError,
    JobStoppedError,
    PollLimitExceededError,
)
from shared.models import PollRequest, PollState


def request(job_type: str = "training", attempt: int = 0, **extra: Any) -> PollRequest:
    return PollRequest.model_validate(
        {
            "job_name": "job",
            "job_type": job_type,
            "attempt": attempt,
            "poll_interval_seconds": 30,
            "max_poll_interval_seconds": 600,
            "max_polls": 10,
            **extra,
        }
    )


def run(req: PollRequest, operation: str, response: dict[str, Any]) -> PollState:
    client, stub = stubbed("sagemaker")
    stub.add_response(operation, response)
    with stub:
        return poll(req, SageMaker(client))


@pytest.mark.parametrize(("attempt", "wait"), [(0, 60), (1, 120), (3, 480), (4, 600), (8, 600)])
def test_in_progress_waits_longer_each_time_up_to_the_max(attempt: int, wait: int) -> None:
    # GIVEN a training job still running after `attempt` polls
    # WHEN polled
    out = run(request(attempt=attempt), "describe_training_job", training_job("job", "InProgress"))
    # THEN the next wait is min(max, interval * 2**(attempt+1)), and it says so
    assert (out.status, out.attempt, out.wait_seconds) == ("InProgress", attempt + 1, wait)
    assert out.reason.startswith("adaptive schedule")


def test_completed_processing_job_completes() -> None:
    out = run(request("processing"), "describe_processing_job", processing_job("job", "Completed"))
    assert out.status == "Completed"


def test_stopping_is_still_in_progress() -> None:
    out = run(request(), "describe_training_job", training_job("job", "Stopping"))
    assert out.status == "InProgress"


def test_failed_job_raises_with_failure_reason() -> None:
    # GIVEN a training job that Failed with the container's reason
    reason = "AlgorithmError: target column 'target' not found"
    # WHEN / THEN JobFailedError carries SageMaker's FailureReason
    with pytest.raises(JobFailedError, match="target column 'target' not found"):
        run(request(), "describe_training_job", training_job("job", "Failed", reason))


def test_stopped_job_raises_job_stopped() -> None:
    with pytest.raises(JobStoppedError, match="MaxRuntimeExceeded"):
        run(
            request("processing"),
            "describe_processing_job",
            processing_job("job", "Stopped", "MaxRuntimeExceeded"),
        )


def test_missing_job_is_a_failure() -> None:
    client, stub = stubbed("sagemaker")
    not_found(stub, "describe_training_job")
    with stub, pytest.raises(JobFailedError, match="does not exist"):
        poll(request(), SageMaker(client))


def test_poll_limit_bounds_the_loop() -> None:
    # GIVEN the last allowed poll (attempt 9 of max_polls 10) and a job still running
    # WHEN / THEN the loop ends with a named error instead of growing the history
    with pytest.raises(PollLimitExceededError, match="after 10 polls"):
        run(request(attempt=9), "describe_training_job", training_job("job", "InProgress"))


def test_limit_does_not_hide_a_completion() -> None:
    out = run(request(attempt=9), "describe_training_job", training_job("job", "Completed"))
    assert out.status == "Completed"


# --- endpoint -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating"])
def test_endpoint_changing_is_in_progress(status: str) -> None:
    req = request("endpoint", expected_config_name="new")
    out = run(req, "describe_endpoint", endpoint("job", status, "old"))
    assert out.status == "InProgress"


def test_endpoint_in_service_on_the_new_config_completes() -> None:
    req = request("endpoint", expected_config_name="new")
    assert run(req, "describe_endpoint", endpoint("job", "InService", "new")).status == "Completed"


def test_update_rolled_back_to_old_config_is_a_failed_update() -> None:
    # GIVEN a blue/green update that failed: InService on the OLD config, FailureReason set
    req = request("endpoint", expected_config_name="new")
    response = endpoint("job", "InService", "old", reason="Alarm sfn-mlops-endpoint-5xx fired")
    # WHEN / THEN the poll says the update failed, with SageMaker's reason
    with pytest.raises(EndpointUpdateFailedError, match=r"InService on old, not new.*5xx"):
        run(req, "describe_endpoint", response)


def test_failed_endpoint_raises_with_reason() -> None:
    req = request("endpoint", expected_config_name="new")
    with pytest.raises(EndpointUpdateFailedError, match="Failed: health check"):
        run(req, "describe_endpoint", endpoint("job", "Failed", "new", reason="health check"))


def test_handler_polls_a_moto_job(moto: None, context: Any) -> None:
    # GIVEN a processing job in moto (Completed at once)
    aws.sagemaker().create_processing_job(
        ProcessingJobName="pre-1",
        RoleArn="arn:aws:iam::123456789012:role/r",
        AppSpecification={"ImageUri": "img"},
        ProcessingResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
    )
    event = request("processing", attempt=2).model_dump() | {"job_name": "pre-1"}
    # WHEN the Poll Lambda runs
    out = PollState.model_validate(lambda_handler(event, context))
    # THEN the loop can leave via the Choice
    assert (out.status, out.attempt, out.wait_seconds) == ("Completed", 3, 1)
