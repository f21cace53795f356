"""EventBridge schedule target: the drift check of the production endpoint's capture."""

from __future__ import annotations

from typing import Any

from functions.monitor.logic import run_check, scheduled_time
from shared import aws
from shared.adapters.s3 import S3
from shared.adapters.sagemaker import SageMaker
from shared.handler import lambda_entry
from shared.observability import count
from shared.settings import MonitorSettings, load_settings


@lambda_entry(correlation_key="id")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = load_settings(MonitorSettings)
    output = run_check(scheduled_time(event), settings, SageMaker(aws.sagemaker()), S3(aws.s3()))
    count({"started": "DriftChecksStarted", "duplicate": "DuplicateEvents"}.get(
        output.action, "DriftChecksSkipped"))  # fmt: skip
    return output.model_dump(mode="json", exclude_none=True)
