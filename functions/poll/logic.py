"""One poll of a processing job, training job or endpoint.

InProgress -> PollState(InProgress, attempt+1, wait and the reason for it from shared/schedule.py:
the job's own progress (training), the step's duration last time (carried in the poll state
from the start state's one lookup), else the adaptive min(max, interval * 2**(attempt+1)));
Completed (endpoint: InService on the expected config) -> PollState(Completed);
Failed -> JobFailedError(FailureReason); Stopped -> JobStoppedError; still running after
`max_polls` polls -> PollLimitExceededError. Endpoint: Failed, or InService on another config
after an update (a blue/green rollback) -> EndpointUpdateFailedError(FailureReason).

Restarts (shared/job_retry.py, separate from the wait schedule): a transient SageMaker failure
(capacity, internal error) -> PollState(Restart) after a backoff, a bounded number of times;
and a poll rerun by a Redrive after one of the failures above -> PollState(Restart), so the
step starts its next attempt instead of failing again on the old job.
"""

from __future__ import annotations

from shared import job_retry
from shared.adapters.sagemaker import JobKind, SageMaker
from shared.errors import (
    EndpointUpdateFailedError,
    JobFailedError,
    JobStoppedError,
    PollLimitExceededError,
)
from shared.models import PollRequest, PollState
from shared.schedule import Progress, plan, secondary_status, settings_of, training_progress

ENDPOINT_IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


def _job_done(
    request: PollRequest, sagemaker: SageMaker
) -> tuple[bool | PollState, Progress | None, str | None]:
    """(done, the job's reported progress, SageMaker's SecondaryStatus) from one Describe;
    done is a PollState(Restart) when a transient failure restarts the step."""
    kind: JobKind = "processing" if request.job_type == "processing" else "training"
    job = sagemaker.describe_job(kind, request.job_name)
    if job is None:
        raise JobFailedError(f"{kind} job {request.job_name} does not exist")
    if job.status == "Completed":
        return True, None, None
    if job.status == "Failed" and not job_retry.redriven(request):
        retry = job_retry.transient_retry(job, lambda name: sagemaker.describe_job(kind, name))
        if retry is not None:
            return retry, None, None
    if job.status == "Failed":
        raise JobFailedError(
            f"{kind} job {request.job_name} failed: {job.failure_reason or 'no FailureReason'}"
        )
    if job.status == "Stopped":
        raise JobStoppedError(
            f"{kind} job {request.job_name} stopped: {job.failure_reason or 'stopped'}"
        )
    if kind == "processing":
        return False, None, None  # InProgress, Stopping
    return False, training_progress(job.description), secondary_status(job.description)


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
    try:
        return _poll(request, sagemaker)
    except (
        JobFailedError,
        JobStoppedError,
        EndpointUpdateFailedError,
        PollLimitExceededError,
    ) as exc:
        if job_retry.redriven(request):
            return job_retry.restart_after_redrive(request, f"{type(exc).__name__}: {exc}")
        raise


def _poll(request: PollRequest, sagemaker: SageMaker) -> PollState:
    done: bool | PollState
    if request.job_type == "endpoint":
        done, progress, detail = _endpoint_done(request, sagemaker), None, None
    else:
        done, progress, detail = _job_done(request, sagemaker)
    if isinstance(done, PollState):
        return done
    attempt = request.attempt + 1
    elapsed = request.elapsed_seconds
    if done:
        return PollState(
            status="Completed",
            attempt=attempt,
            wait_seconds=1,
            elapsed_seconds=elapsed,
            expected_seconds=request.expected_seconds,
            reason=f"Completed at poll {attempt}, about {elapsed} s after the start",
        )
    if attempt >= request.max_polls:
        raise PollLimitExceededError(
            f"{request.job_type} {request.job_name} still in progress after {attempt} polls "
            f"(max_polls={request.max_polls})"
        )
    chosen = plan(
        settings_of(request),
        attempt=attempt,
        elapsed=elapsed,
        expected=request.expected_seconds,
        progress=progress,
        status_detail=detail,
    )
    return PollState(
        status="InProgress",
        attempt=attempt,
        wait_seconds=chosen.wait,
        elapsed_seconds=elapsed + chosen.wait,
        expected_seconds=request.expected_seconds,
        reason=chosen.reason,
    )
