"""EvaluateModel, the gate (`lambda_handler`, result at $.gate)."""

from __future__ import annotations

from typing import Any

from functions.gate.logic import gate
from shared import aws
from shared.adapters.s3 import S3
from shared.handler import lambda_entry, parse
from shared.models import GateRequest
from shared.observability import count, logger


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(GateRequest, event)
    output = gate(request, S3(aws.s3()))
    count("GatePassed" if output.passed else "GateFailed")
    logger.info("gate decided", extra=output.model_dump(mode="json"))
    return output.model_dump(mode="json")
