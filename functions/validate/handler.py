"""ValidateInput: {payload, execution_name, execution_arn} in, ValidateOutput out (it replaces
the state data: {config, execution_name, execution_arn})."""

from __future__ import annotations

from typing import Any

from functions.validate.logic import validate
from shared import aws
from shared.adapters.s3 import S3
from shared.handler import lambda_entry, parse
from shared.models import ValidateRequest
from shared.observability import logger
from shared.settings import ValidateSettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(ValidateRequest, event)
    output = validate(request, load_settings(ValidateSettings), S3(aws.s3()))
    logger.info("input valid", extra={"image_uri": output.config.image_uri})
    return output.model_dump(mode="json")
