"""When a job (or endpoint update) that ended unsuccessfully is started again.

Two cases return `PollState(status="Restart")`, which the definition routes through a Wait
back to the Start state (which starts the job's next attempt, shared/jobs.py):

- **Redrive.** The step's poll fails at the state where it failed (Failed/Stopped job, a
  rolled-back endpoint update, the poll limit). A Redrive reruns that poll with the input it
  had; its `$$.Execution.RedriveCount` is now above the count recorded when the job was
  started (`Restartable.redrive_count`), so instead of failing again on the old job it
  restarts the step: the cause has been fixed, the next attempt runs.
- **Transient SageMaker failures** (capacity, internal errors: what SageMaker Pipelines'
  retry policies call CAPACITY_ERROR and JOB_INTERNAL_ERROR) are retried automatically, at
  most `MAX_TRANSIENT_RETRIES` times per step and execution, with exponential backoff. An
  algorithm or client error (bad data, bad hyperparameters) is not retried.

The wait between polls is shared/polling.py; this module only decides on restarts.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.adapters.sagemaker import JobStatus
from shared.models import PollRequest, PollState
from shared.naming import attempt_of, with_attempt
from shared.observability import logger

MAX_TRANSIENT_RETRIES = 2
BACKOFF_BASE_SECONDS = 60
BACKOFF_MAX_SECONDS = 900
RESTART_AFTER_REDRIVE_SECONDS = 1

#: FailureReason categories of transient failures. SageMaker's FailureReason starts with a
#: category ("AlgorithmError: ...", "ClientError: ...", "CapacityError: ..."); it is the only
#: signal the API gives for why a job failed, so the category (not free text) is matched.
TRANSIENT_CATEGORIES = frozenset(
    {
        "CapacityError",
        "InsufficientCapacityError",
        "InsufficientCapacity",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
    }
)


def failure_category(reason: str | None) -> str:
    """The category SageMaker puts before the first ':' of a FailureReason ('' if none)."""
    head, sep, _ = (reason or "").partition(":")
    return head.strip() if sep else ""


def is_transient(reason: str | None) -> bool:
    return failure_category(reason) in TRANSIENT_CATEGORIES


def backoff_seconds(retry: int) -> int:
    """Wait before automatic retry number `retry` (0-based): 60 s, 120 s, ... up to 15 min."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (1 << min(retry, 16)))


def redriven(request: PollRequest) -> bool:
    """True when this poll runs in a later redrive than the one that started the job."""
    return request.redrive_count > request.started_redrive_count


def restart_after_redrive(request: PollRequest, why: str) -> PollState:
    logger.info(
        "redriven after an unsuccessful job: restarting the step",
        extra={"job_name": request.job_name, "why": why, "redrive_count": request.redrive_count},
    )
    return PollState(status="Restart", attempt=0, wait_seconds=RESTART_AFTER_REDRIVE_SECONDS)


def transient_retry(
    job: JobStatus, describe: Callable[[str], JobStatus | None]
) -> PollState | None:
    """A Restart after `backoff_seconds` if `job` failed transiently and retries are left.

    The retries used so far are the earlier attempts of this step that failed transiently,
    counted back from this one (names carry the attempt: shared/naming.py).
    """
    if job.status != "Failed" or not is_transient(job.failure_reason):
        return None
    try:
        base, attempt = attempt_of(job.name)
    except ValueError:  # not a pipeline job name: its earlier attempts cannot be counted
        return None
    used = 0
    for earlier in range(attempt - 1, 0, -1):
        previous = describe(with_attempt(base, earlier))
        if (
            previous is None
            or previous.status != "Failed"
            or not is_transient(previous.failure_reason)
        ):
            break
        used += 1
    if used >= MAX_TRANSIENT_RETRIES:
        return None
    wait = backoff_seconds(used)
    logger.info(
        "transient SageMaker failure: retrying as the next attempt",
        extra={"job_name": job.name, "reason": job.failure_reason, "retry": used + 1, "wait": wait},
    )
    return PollState(status="Restart", attempt=0, wait_seconds=wait)
