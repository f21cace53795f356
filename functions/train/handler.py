"""StartTraining: the whole state in (reads $.preprocess), TrainOutput out ($.train)."""

from __future__ import annotations

from typing import Any

from functions.train.logic import start_training
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import TrainRequest
from shared.observability import count
from shared.settings import JobSettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(TrainRequest, event)
    output = start_training(request, load_settings(JobSettings), SageMaker(aws.sagemaker()))
    count("JobsReused" if output.reused else "JobsStarted")
    return output.model_dump(mode="json")
