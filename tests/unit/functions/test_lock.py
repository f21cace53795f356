"""The deployment lock (functions/lock): take, wait, reclaim from a closed owner, release,
and release when the owner's execution closes (moto DynamoDB and Step Functions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fn_support import ACCOUNT, ENV, EXECUTION_ARN, config, make_table, state

from functions.lock.handler import acquire_handler, execution_closed_handler, release_handler
from functions.lock.logic import lock_key
from shared import aws
from shared.errors import DeployLockTimeoutError
from shared.models import LockState

KEY = lock_key("sfn-mlops-endpoint")


@pytest.fixture
def sfn(moto: None) -> str:
    """A state machine whose executions stay RUNNING until stopped (moto does not run it)."""
    make_table()
    return str(
        aws.stepfunctions().create_state_machine(
            name="sfn-mlops-pipeline",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
        )["stateMachineArn"]
    )


def running(sfn: str, name: str) -> str:
    return str(aws.stepfunctions().start_execution(stateMachineArn=sfn, name=name)["executionArn"])


def as_execution(arn: str, lock: dict[str, Any] | None = None, **cfg: Any) -> dict[str, Any]:
    data = state(config=config(**cfg)) | {"execution_arn": arn, "execution_name": arn[-20:]}
    if lock is not None:
        data["lock"] = lock
    return data


def owner() -> str | None:
    item = aws.dynamodb().get_item(TableName=ENV["COORDINATION_TABLE"], Key={"pk": {"S": KEY}})
    return item.get("Item", {}).get("owner", {}).get("S")


def test_free_lock_is_taken_and_a_retry_keeps_it(sfn: str, context: Any) -> None:
    # GIVEN no deployment in progress
    me = running(sfn, "me")
    # WHEN this execution takes the lock, and the state is retried
    first = LockState.model_validate(acquire_handler(as_execution(me), context))
    again = LockState.model_validate(acquire_handler(as_execution(me), context))
    # THEN it holds it both times
    assert first.acquired
    assert again.acquired
    assert owner() == me


def test_a_running_holder_makes_the_next_wait_with_the_adaptive_poll(
    sfn: str, context: Any
) -> None:
    # GIVEN a RUNNING execution holding the lock
    holder, me = running(sfn, "holder"), running(sfn, "me")
    acquire_handler(as_execution(holder), context)
    # WHEN another execution tries, twice
    first = LockState.model_validate(acquire_handler(as_execution(me), context))
    second = LockState.model_validate(
        acquire_handler(as_execution(me, first.model_dump()), context)
    )
    # THEN it waits (not fails), longer the second time, and is told who holds it
    assert (first.acquired, second.acquired) == (False, False)
    assert first.owner == holder
    assert second.wait_seconds > first.wait_seconds
    assert owner() == holder


def test_waiting_is_bounded_by_max_polls(sfn: str, context: Any) -> None:
    holder, me = running(sfn, "holder"), running(sfn, "me")
    acquire_handler(as_execution(holder), context)
    waited = {"acquired": False, "lock_key": KEY, "owner": holder, "attempt": 2, "wait_seconds": 4}
    with pytest.raises(DeployLockTimeoutError, match="max_polls"):
        acquire_handler(as_execution(me, waited, max_polls=3), context)


def test_a_lock_whose_owner_was_stopped_is_reclaimed(sfn: str, context: Any) -> None:
    # GIVEN a holder that was stopped with StopExecution (no state of it released the lock)
    holder, me = running(sfn, "holder"), running(sfn, "me")
    acquire_handler(as_execution(holder), context)
    aws.stepfunctions().stop_execution(executionArn=holder)
    # WHEN the next execution tries
    out = LockState.model_validate(acquire_handler(as_execution(me), context))
    # THEN it reclaims the lock, and says from whom
    assert out.acquired
    assert out.reclaimed_from == holder
    assert owner() == me


def test_release_deletes_only_my_lock(sfn: str, context: Any) -> None:
    holder, me = running(sfn, "holder"), running(sfn, "me")
    acquire_handler(as_execution(holder), context)
    # a non-holder's release changes nothing; the holder's frees the lock
    assert release_handler(as_execution(me), context)["released"] is False
    assert owner() == holder
    assert release_handler(as_execution(holder), context)["released"] is True
    assert owner() is None


def test_execution_closed_event_releases_its_locks(sfn: str, context: Any) -> None:
    # GIVEN a holder that failed
    holder = running(sfn, "holder")
    acquire_handler(as_execution(holder), context)
    event = {
        "id": "e-1",
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"executionArn": holder, "stateMachineArn": sfn, "status": "FAILED"},
    }
    # WHEN its status-change event arrives (twice: at least once delivery)
    first = execution_closed_handler(event, context)
    second = execution_closed_handler(event, context)
    # THEN its lock is released once, and the duplicate is harmless
    assert first == {"released": [KEY], "follow_up": None}
    assert second == {"released": [], "follow_up": None}
    assert owner() is None


def test_running_status_event_releases_nothing(sfn: str, context: Any) -> None:
    holder = running(sfn, "holder")
    acquire_handler(as_execution(holder), context)
    event = {"id": "e", "detail": {"executionArn": holder, "status": "RUNNING"}}
    assert execution_closed_handler(event, context) == {"released": [], "follow_up": None}
    assert owner() == holder


def test_the_lock_is_per_endpoint(sfn: str, context: Any) -> None:
    holder, me = running(sfn, "holder"), running(sfn, "me")
    acquire_handler(as_execution(holder), context)
    out = acquire_handler(as_execution(me, endpoint_name="other-endpoint"), context)
    assert out["acquired"] is True


assert EXECUTION_ARN  # the fixtures' default execution is not used by these tests
