"""EventBridge target of the execution status rule (FAILED, TIMED_OUT, ABORTED): publishes
the failure notification, naming the state the execution ended in."""

from __future__ import annotations

from typing import Any

from functions.notify.logic import notify
from shared import aws
from shared.adapters.sns import Topic
from shared.adapters.stepfunctions import StepFunctions
from shared.handler import lambda_entry, parse
from shared.models import StatusChangeEvent
from shared.observability import count, logger
from shared.settings import NotifySettings, load_settings


@lambda_entry(correlation_key="id")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    change = parse(StatusChangeEvent, event)
    topic = Topic(aws.sns(), load_settings(NotifySettings).notification_topic_arn)
    output = notify(change, StepFunctions(aws.stepfunctions()), topic)
    count("FailureNotified")
    logger.info("notified", extra=output.model_dump(mode="json"))
    return output.model_dump(mode="json")
