"""StartPreprocessing: the whole state in, PreprocessOutput out (stored at $.preprocess)."""

from __future__ import annotations

from typing import Any

from functions.preprocess.logic import start_preprocessing
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry, parse
from shared.models import StepRequest
from shared.observability import count
from shared.settings import JobSettings, load_settings


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(StepRequest, event)
    output = start_preprocessing(request, load_settings(JobSettings), SageMaker(aws.sagemaker()))
    count("JobsReused" if output.reused else "JobsStarted")
    return output.model_dump(mode="json")
