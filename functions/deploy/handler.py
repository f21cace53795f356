"""UpdateEndpoint: the whole state in (reads $.train, $.register, $.gate), DeployOutput out
($.deploy); the endpoint poll then waits for InService on the new config."""

from __future__ import annotations

from typing import Any

from functions.deploy.logic import deploy
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import DeployRequest
from shared.observability import count
from shared.settings import DeploySettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(DeployRequest, event)
    output = deploy(request, load_settings(DeploySettings), SageMaker(aws.sagemaker()))
    if output.action != "none":
        count("Deployments")
        count("EndpointsCreated" if output.action == "create" else "EndpointsUpdated")
    return output.model_dump(mode="json")
