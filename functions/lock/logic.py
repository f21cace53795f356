"""The deployment lock (Step Functions' semaphore pattern, with one slot per endpoint).

- acquire: a conditional write takes the endpoint's lock item for this execution (owner =
  execution ARN). If another execution holds it, its status decides: RUNNING -> wait (the
  state machine's Wait loop, adaptive and bounded by max_polls); anything else (it failed,
  timed out, was stopped or succeeded without releasing) -> reclaim it, conditionally on that
  owner, so two waiters cannot both reclaim it.
- release: delete the item if this execution holds it (after the smoke test, or when the
  fresh decision says not to deploy).
- release_on_end: the "Step Functions Execution Status Change" event of a closed execution
  releases whatever it still holds (failure, timeout, StopExecution: there is no Catch path).
"""

from __future__ import annotations

from shared.adapters.dynamodb import CoordinationTable
from shared.adapters.stepfunctions import StepFunctions
from shared.errors import DeployLockTimeoutError
from shared.models import LockReleaseOutput, LockRequest, LockState, StepRequest
from shared.observability import logger
from shared.polling import wait_seconds

#: Execution statuses whose owner can still use the lock (redrive makes a FAILED one RUNNING).
ALIVE = frozenset({"RUNNING"})
#: detail.status values of a closed execution (AWS-SEMANTICS.md, execution status events).
CLOSED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


LOCK_PREFIX = "lock#"


def lock_key(endpoint_name: str) -> str:
    return f"{LOCK_PREFIX}endpoint#{endpoint_name}"


def acquire(request: LockRequest, table: CoordinationTable, sfn: StepFunctions) -> LockState:
    key = lock_key(request.config.endpoint_name)
    me = request.execution_arn
    attempt = 0 if request.lock is None else request.lock.attempt + 1
    reclaimed: str | None = None
    holder: str | None = None
    for _ in range(3):  # a free-or-reclaimed lock can be raced away; then look again
        if table.take(key, me):
            break
        holder = table.owner_of(key)
        if holder is None:
            continue  # released meanwhile: take it on the next round
        status = sfn.execution_status(holder)
        if status in ALIVE:
            break
        if table.reclaim(key, me, holder):
            logger.info("lock reclaimed", extra={"lock": key, "from": holder, "status": status})
            reclaimed = holder
            holder = None
            break
    else:
        holder = table.owner_of(key) or "another execution"
    config = request.config
    if holder is None or holder == me:
        logger.info("lock acquired", extra={"lock": key, "attempt": attempt})
        return LockState(
            acquired=True,
            lock_key=key,
            owner=me,
            reclaimed_from=reclaimed,
            attempt=attempt,
            wait_seconds=1,
        )
    if attempt >= config.max_polls:
        raise DeployLockTimeoutError(
            f"endpoint {config.endpoint_name}: the deployment lock was held by the RUNNING "
            f"execution {holder} for all {config.max_polls} waits (max_polls); re-run or redrive "
            "this execution when it has finished"
        )
    logger.info("lock busy", extra={"lock": key, "holder": holder, "attempt": attempt})
    return LockState(
        acquired=False,
        lock_key=key,
        owner=holder,
        attempt=attempt,
        wait_seconds=wait_seconds(
            attempt, config.poll_interval_seconds, config.max_poll_interval_seconds
        ),
    )


def release(request: StepRequest, table: CoordinationTable) -> LockReleaseOutput:
    key = lock_key(request.config.endpoint_name)
    released = table.release(key, request.execution_arn)
    logger.info("lock released" if released else "lock not held", extra={"lock": key})
    return LockReleaseOutput(lock_key=key, released=released)


def release_on_end(execution_arn: str, status: str, table: CoordinationTable) -> list[str]:
    """Release every lock a closed execution still holds; the keys released."""
    if status not in CLOSED:
        return []
    locks = [k for k in table.keys_owned_by(execution_arn) if k.startswith(LOCK_PREFIX)]
    released = [k for k in locks if table.release(k, execution_arn)]
    if released:
        logger.info(
            "locks of a closed execution released",
            extra={"execution_arn": execution_arn, "status": status, "locks": released},
        )
    return released
