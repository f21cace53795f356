"""Execution status change events for the local cloud (a small, separate hook).

AWS emits "Step Functions Execution Status Change" (`source: aws.states`) when an execution
closes: SUCCEEDED | FAILED | TIMED_OUT | ABORTED (StopExecution). moto emits nothing. The
pipeline relies on these events: the execution-closed rule releases a closed execution's
deployment locks and starts a due follow-up data run (functions/lock).

This hook emits the closing event only. Issue 9's local cloud (RedriveExecution and status
events on RUNNING and redrive) emits the same events; when both are installed, install only
one of them (the events are idempotent for the pipeline, but the notifications would double).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

STATUS_CHANGE = "Step Functions Execution Status Change"
Emit = Callable[[dict[str, Any]], None]


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else None


def status_change_event(execution: Any) -> dict[str, Any]:
    """The EventBridge event AWS emits for `execution`'s current status."""
    arn = str(execution.exec_arn)
    parts = arn.split(":")
    status = str(getattr(execution.exec_status, "value", execution.exec_status))
    output = execution.output if status == "SUCCEEDED" else None
    detail = {
        "executionArn": arn,
        "stateMachineArn": str(execution.state_machine_arn),
        "name": str(execution.name),
        "status": status,
        "startDate": _millis(execution.start_date),
        "stopDate": _millis(execution.stop_date) or _millis(dt.datetime.now(dt.UTC)),
        "input": json.dumps(execution.input_data) if execution.input_data is not None else None,
        "output": output if isinstance(output, str) or output is None else json.dumps(output),
        "error": execution.error,
        "cause": execution.cause,
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATUS_CHANGE,
        "source": "aws.states",
        "account": parts[4],
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": parts[3],
        "resources": [arn],
        "detail": detail,
    }


def install(patches: Any, emit: Emit) -> None:
    """Emit the closing status event of every execution moto's interpreter ends."""
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    original = BaseExecutionWorkerCommunication.terminated

    def terminated(comm: Any) -> None:
        original(comm)
        emit(status_change_event(comm.execution))

    patches.set(BaseExecutionWorkerCommunication, "terminated", terminated)
