"""StartEvaluation (`lambda_handler`, result at $.evaluate) and EvaluateModel, the gate
(`gate_handler`, result at $.gate): two functions, one folder."""

from __future__ import annotations

from typing import Any

from functions.evaluate.logic import gate, start_evaluation
from shared import aws
from shared.adapters.s3 import S3
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import EvaluateRequest, GateRequest
from shared.observability import count, logger
from shared.settings import JobSettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(EvaluateRequest, event)
    output = start_evaluation(request, load_settings(JobSettings), SageMaker(aws.sagemaker()))
    count("JobsReused" if output.reused else "JobsStarted")
    return output.model_dump(mode="json")


@lambda_entry()
def gate_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(GateRequest, event)
    output = gate(request, S3(aws.s3()))
    count("GatePassed" if output.passed else "GateFailed")
    logger.info("gate decided", extra=output.model_dump(mode="json"))
    return output.model_dump(mode="json")
