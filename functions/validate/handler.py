"""ValidateInput: {payload, execution_name, execution_arn} in, ValidateOutput out (it replaces
the state data: {config, execution_name, execution_arn, candidate}). A payload with
`model_package_arn` is a registry approval's run: the package, not data, is checked."""

from __future__ import annotations

from typing import Any

from functions.validate.logic import validate, validate_promotion
from functions.validate.registry import PACKAGE_KEY
from shared import aws
from shared.adapters.s3 import S3
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import ValidateRequest
from shared.observability import logger
from shared.settings import ValidateSettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(ValidateRequest, event)
    settings = load_settings(ValidateSettings)
    if PACKAGE_KEY in request.payload:  # a registry approval's run: deploy that package
        output = validate_promotion(request, settings, SageMaker(aws.sagemaker()))
    else:
        output = validate(request, settings, S3(aws.s3()))
    logger.info("input valid", extra={"image_uri": output.config.image_uri})
    return output.model_dump(mode="json")
