"""One poll of a processing job, training job or endpoint.

InProgress -> PollState(InProgress, attempt+1, wait = min(max, interval * 2**(attempt+1)));
Completed (endpoint: InService on the expected config) -> PollState(Completed);
Failed -> JobFailedError(FailureReason); Stopped -> JobStoppedError; still running after
`max_polls` polls -> PollLimitExceededError. Endpoint: Failed, or InService on another config
after an update (a blue/green rollback) -> EndpointUpdateFailedError(FailureReason).
"""

from __future__ import annotations

from shared.adapters.sagemaker import JobKind, SageMaker
from shared.errors import (
    EndpointUpdateFailedError,
    JobFailedError,
    JobStoppedError,
    PollLimitExceededError,
)
from shared.models import PollRequest, PollState
from shared.polling import wait_seconds

ENDPOINT_IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


def _job_done(request: PollRequest, sagemaker: SageMaker) -> bool:
    kind: JobKind = "processing" if request.job_type == "processing" else "training"
    job = sagemaker.describe_job(kind, request.job_name)
    if job is None:
        raise JobFailedError(f"{kind} job {request.job_name} does not exist")
    if job.status == "Completed":
        return True
    if job.status == "Failed":
        raise JobFailedError(
            f"{kind} job {request.job_name} failed: {job.failure_reason or 'no FailureReason'}"
        )
    if job.status == "Stopped":
        raise JobStoppedError(
            f"{kind} job {request.job_name} stopped: {job.failure_reason or 'stopped'}"
        )
    return False  # InProgress, Stopping


def _endpoint_done(request: PollRequest, sagemaker: SageMaker) -> bool:
    name = request.job_name
    endpoint = sagemaker.describe_endpoint(name)
    if endpoint is None:
        raise EndpointUpdateFailedError(f"endpoint {name} does not exist")
    status = str(endpoint.get("EndpointStatus"))
    reason = endpoint.get("FailureReason") or "no FailureReason"
    serving = endpoint.get("EndpointConfigName")
    if status in ENDPOINT_IN_PROGRESS:
        return False
    if status == "InService":
        expected = request.expected_config_name
        if expected is None or serving == expected:
            return True
        raise EndpointUpdateFailedError(
            f"endpoint {name} is InService on {serving}, not {expected}: the update was "
            f"rolled back ({reason})"
        )
    raise EndpointUpdateFailedError(f"endpoint {name} is {status}: {reason}")


def poll(request: PollRequest, sagemaker: SageMaker) -> PollState:
    done = (
        _endpoint_done(request, sagemaker)
        if request.job_type == "endpoint"
        else _job_done(request, sagemaker)
    )
    attempt = request.attempt + 1
    if done:
        return PollState(status="Completed", attempt=attempt, wait_seconds=1)
    if attempt >= request.max_polls:
        raise PollLimitExceededError(
            f"{request.job_type} {request.job_name} still in progress after {attempt} polls "
            f"(max_polls={request.max_polls})"
        )
    return PollState(
        status="InProgress",
        attempt=attempt,
        wait_seconds=wait_seconds(
            attempt, request.poll_interval_seconds, request.max_poll_interval_seconds
        ),
    )
