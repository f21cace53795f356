"""Inference (user-facing, and the workflow's post-deploy SmokeTest): InvokeRequest in,
InvokeOutput out. Traced: X-Ray is imported on the first invocation, not at import."""

from __future__ import annotations

from typing import Any

from functions.invoke.loadcheck import load_check
from functions.invoke.logic import invoke
from shared import aws
from shared.adapters.runtime import SageMakerRuntime
from shared.adapters.s3 import S3
from shared.errors import InferenceError
from shared.handler import lambda_entry, parse
from shared.models import InvokeRequest, LoadCheckRequest
from shared.observability import count
from shared.settings import InvokeSettings, load_settings


@lambda_entry(tracing=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse(InvokeRequest, event)
    runtime, s3 = SageMakerRuntime(aws.sagemaker_runtime()), S3(aws.s3())
    try:
        output = invoke(request, load_settings(InvokeSettings), runtime, s3)
    except InferenceError:
        count("InferenceErrors")
        raise
    count("Predictions", output.row_count)
    return output.model_dump(mode="json")


@lambda_entry()
def load_check_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """LoadCheckStaging: LoadCheckRequest in, LoadCheckOutput out (or LoadCheckFailedError)."""
    request = parse(LoadCheckRequest, event)
    runtime, s3 = SageMakerRuntime(aws.sagemaker_runtime()), S3(aws.s3())
    return load_check(request, runtime, s3).model_dump(mode="json")
