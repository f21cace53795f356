"""Constants, event/state builders and fixtures shared by the function tests: moto
in-process, a Lambda context, and helpers that build each state's payload the way the state
machine does. Imported by name (`from fn_support import ...`): several test folders have a
conftest.py, so `from conftest import` would be ambiguous."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared import aws
from shared.resources import pipeline_defaults
from shared.settings import reset_settings

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = f"sfn-mlops-{ACCOUNT}-{REGION}"
REPOSITORY = "sfn-mlops-model"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}:latest"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
EXECUTION = "img-sfn-mlops-model-0123456789abcdef0123456789abcdef"
EXECUTION_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:sfn-mlops-pipeline:{EXECUTION}"
EVENTS = Path(__file__).resolve().parents[2] / "events"

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "ARTIFACT_BUCKET": BUCKET,
    "ARTIFACTS_PREFIX": "runs/",
    "SAGEMAKER_ROLE_ARN": ROLE,
    "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:sfn-mlops-pipeline",
    "ECR_REPOSITORY": REPOSITORY,
    "MODEL_PACKAGE_GROUP": "sfn-mlops-models",
    "DATA_PREFIX": "data/",
    "DEFAULT_IMAGE_URI": IMAGE,
    "ENDPOINT_ALARM_NAMES": "sfn-mlops-endpoint-5xx,sfn-mlops-endpoint-latency",
    "DATA_CAPTURE_PERCENT": "100",
    "DRIFT_ALARM_NAME": "sfn-mlops-drift",
    "DRIFT_COOLDOWN_SECONDS": "86400",
    "MONITORED_ENDPOINT": "sfn-mlops-endpoint",
    "MONITOR_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/sfn-mlops-drift-job",
    "MONITOR_WINDOW_HOURS": "1",
    "DRIFT_ENVIRONMENT": '{"MIN_RECORDS": "200", "PSI_THRESHOLD": "0.2"}',
    "STAGING_ALARM_NAMES": "sfn-mlops-staging-5xx,sfn-mlops-staging-latency",
    "COORDINATION_TABLE": "sfn-mlops-coordination",
    "POWERTOOLS_SERVICE_NAME": "sfn-mlops-test",
    "POWERTOOLS_METRICS_NAMESPACE": "SfnMlops",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and every function setting; no endpoint override (no network)."""
    for key in list(__import__("os").environ):
        if key.startswith("AWS_ENDPOINT_URL") or key == "AWS_PROFILE":
            monkeypatch.delenv(key, raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PIPELINE_DEFAULTS", json.dumps(pipeline_defaults()))
    reset_settings()
    aws.reset_clients()
    yield
    reset_settings()
    aws.reset_clients()


@pytest.fixture
def moto() -> Iterator[None]:
    """moto in-process; clients made through the factory after it started are mocked."""
    from moto import mock_aws

    with mock_aws():
        aws.reset_clients()
        yield
    aws.reset_clients()


@dataclass
class LambdaContext:
    function_name: str = "sfn-mlops-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sfn-mlops-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/sfn-mlops-test"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


def event(name: str) -> dict[str, Any]:
    """An EventBridge event fixture from tests/events/."""
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return data


def config(**overrides: Any) -> dict[str, Any]:
    """A resolved PipelineInput (config/pipeline.yaml + image and data), as state JSON."""
    base = pipeline_defaults()
    base.update(image_uri=IMAGE, raw_data_uri=f"s3://{BUCKET}/data/")
    base.update(overrides)
    return base


def state(**results: Any) -> dict[str, Any]:
    """The state data after ValidateInput, plus earlier states' results."""
    return {
        "config": results.pop("config", None) or config(),
        "execution_name": EXECUTION,
        "execution_arn": EXECUTION_ARN,
        **results,
    }


def make_table() -> None:
    """The coordination table, as the local cloud creates it."""
    from shared.resources import coordination_table_request

    aws.dynamodb().create_table(**coordination_table_request(ENV["COORDINATION_TABLE"]))  # type: ignore[arg-type]


def make_bucket() -> None:
    aws.s3().create_bucket(Bucket=BUCKET)


def upload_data(body: bytes = b"a,b,target\n1,2,0\n", key: str = "data/data.csv") -> str:
    """A raw data object under the default data prefix (ValidateInput reads its header)."""
    aws.s3().put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"
