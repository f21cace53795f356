"""StartEvaluation (`lambda_handler`, result at $.evaluate). The gate is functions/gate/."""

from __future__ import annotations

from typing import Any

from functions.evaluate.logic import start_evaluation
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import EvaluateRequest
from shared.observability import count
from shared.settings import JobSettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(EvaluateRequest, event)
    output = start_evaluation(request, load_settings(JobSettings), SageMaker(aws.sagemaker()))
    count("JobsReused" if output.reused else "JobsStarted")
    return output.model_dump(mode="json")
