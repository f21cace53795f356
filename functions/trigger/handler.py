"""EventBridge target (invoked asynchronously): ECR push / S3 Object Created -> StartExecution."""

from __future__ import annotations

from typing import Any

from functions.trigger.logic import handle_event
from shared import aws
from shared.adapters.dynamodb import CoordinationTable
from shared.adapters.stepfunctions import StepFunctions
from shared.handler import lambda_entry
from shared.observability import count
from shared.settings import TriggerSettings, load_settings

_METRIC = {
    "started": "ExecutionsStarted",
    "duplicate": "DuplicateEvents",
    "follow-up": "FollowUpsQueued",
    "ignored": "IgnoredEvents",
}


@lambda_entry(correlation_key="id")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = load_settings(TriggerSettings)
    output = handle_event(
        event,
        settings,
        StepFunctions(aws.stepfunctions()),
        CoordinationTable(aws.dynamodb(), settings.coordination_table),
    )
    count(_METRIC[output.action])
    return output.model_dump(mode="json", exclude_none=True)
