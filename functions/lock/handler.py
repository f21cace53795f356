"""AcquireDeployLock and ReleaseDeployLock (states), and the EventBridge target for a closed
execution: it releases the locks the execution still holds (failed, timed out, stopped) and
frees the data-run item, starting the follow-up data run if one was asked for."""

from __future__ import annotations

from typing import Any

from functions.lock.logic import CLOSED, acquire, release, release_on_end
from shared import aws
from shared.adapters.dynamodb import CoordinationTable
from shared.adapters.stepfunctions import StepFunctions
from shared.data_runs import on_closed
from shared.handler import lambda_entry, parse
from shared.models import LockRequest, StatusChangeEvent, StepRequest
from shared.settings import ExecutionClosedSettings, LockSettings, load_settings


def _table() -> CoordinationTable:
    return CoordinationTable(aws.dynamodb(), load_settings(LockSettings).coordination_table)


@lambda_entry()
def acquire_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(LockRequest, event)
    return acquire(request, _table(), StepFunctions(aws.stepfunctions())).model_dump(mode="json")


@lambda_entry()
def release_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return release(parse(StepRequest, event), _table()).model_dump(mode="json")


@lambda_entry(correlation_key="id")
def execution_closed_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = parse(StatusChangeEvent, event).detail
    settings = load_settings(ExecutionClosedSettings)
    table = CoordinationTable(aws.dynamodb(), settings.coordination_table)
    released = release_on_end(detail.execution_arn, detail.status, table)
    followup = None
    if detail.status in CLOSED:
        followup = on_closed(
            detail.execution_arn,
            settings.data_prefix,
            settings.state_machine_arn,
            StepFunctions(aws.stepfunctions()),
            table,
        )
    return {"released": released, "follow_up": followup}
