"""PollJob / PollEndpoint: PollRequest in, PollState out (stored at $.<step>.poll)."""

from __future__ import annotations

from typing import Any

from functions.poll.logic import poll
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import PollRequest
from shared.observability import logger


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(PollRequest, event)
    state = poll(request, SageMaker(aws.sagemaker()))
    logger.info("polled", extra={"job_name": request.job_name, **state.model_dump()})
    return state.model_dump(mode="json")
