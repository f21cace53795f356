"""RegisterModel: the whole state in (reads $.train, $.evaluate, $.gate), RegisterOutput out
($.register)."""

from __future__ import annotations

from typing import Any

from functions.register.logic import register
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import RegisterRequest
from shared.observability import count


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(RegisterRequest, event)
    output = register(request, SageMaker(aws.sagemaker()))
    if not output.reused:
        count("ModelsApproved" if output.approval_status == "Approved" else "ModelsRejected")
    return output.model_dump(mode="json")
