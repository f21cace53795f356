"""UpdateEndpoint: the whole state in (reads $.train, $.register, $.gate, $.lock, $.recheck),
DeployOutput out ($.deploy); the endpoint poll then waits for InService on the new config.
It first checks it holds the deployment lock (taken back after a redrive, if safe)."""

from __future__ import annotations

from typing import Any

from functions.deploy.logic import deploy, hold_deploy_lock
from shared import aws
from shared.adapters.dynamodb import CoordinationTable
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import DeployRequest
from shared.observability import count
from shared.settings import DeploySettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(DeployRequest, event)
    settings = load_settings(DeploySettings)
    sagemaker = SageMaker(aws.sagemaker())
    hold_deploy_lock(
        request, CoordinationTable(aws.dynamodb(), settings.coordination_table), sagemaker
    )
    output = deploy(request, settings, sagemaker)
    if output.action != "none":
        count("Deployments")
        count("EndpointsCreated" if output.action == "create" else "EndpointsUpdated")
    return output.model_dump(mode="json")
