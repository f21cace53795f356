"""The client factory (lazy, cached, honours AWS_ENDPOINT_URL) and what importing a handler
does NOT do: import boto3, build a client or import the X-Ray SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shared import aws
from shared.resources import FUNCTIONS, METRICS_NAMESPACE, REPO_ROOT

_PROBE = """
import json, sys
for handler in {handlers!r}:
    module, _, name = handler.rpartition(".")
    fn = getattr(__import__(module, fromlist=[name]), name)
    assert callable(fn), handler
heavy = ("boto3", "aws_xray_sdk", "sagemaker", "stepfunctions", "moto")
heavy = [m for m in heavy if m in sys.modules]
print(json.dumps(heavy))
"""


def test_importing_handlers_imports_no_boto3_and_no_tracer() -> None:
    # GIVEN a fresh interpreter
    # WHEN every function's handler module is imported
    code = _PROBE.format(handlers=[f.handler for f in FUNCTIONS])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    # THEN no client library, X-Ray SDK or SDK is loaded (they load lazily, on first use)
    assert json.loads(out.stdout) == []


def test_client_is_cached_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    aws.reset_clients()
    assert aws.sagemaker() is aws.sagemaker()
    assert aws.sagemaker() is not aws.s3()
    aws.reset_clients()


def test_client_honours_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the local cloud's endpoint in the environment
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5555")
    aws.reset_clients()
    # WHEN a client is made through the factory
    # THEN it talks to that endpoint
    assert aws.stepfunctions().meta.endpoint_url == "http://127.0.0.1:5555"
    aws.reset_clients()


def test_clients_and_constraints_parse_a_service_model_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a fresh client factory, counting the JSON files botocore's loader parses
    from botocore.loaders import JSONFileLoader

    from shared import constraints

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()
    constraints.service_shapes.cache_clear()
    loaded: list[str] = []
    original = JSONFileLoader.load_file

    def counting(self: JSONFileLoader, file_path: str) -> object:
        loaded.append(file_path)
        return original(self, file_path)

    monkeypatch.setattr(JSONFileLoader, "load_file", counting)
    # WHEN two clients are made and validate's instance-type check reads the SageMaker model
    aws.sagemaker()
    aws.s3()
    assert "ml.m5.xlarge" in constraints.enum_values("TrainingInstanceType")
    # THEN each file (the SageMaker model, the endpoints) was parsed once for the process
    parsed = [
        p
        for p in loaded
        if p.endswith("/endpoints") or ("/sagemaker/" in p and p.endswith("/service-2"))
    ]
    assert len(parsed) == len(set(parsed)) == 2, loaded
    constraints.service_shapes.cache_clear()
    aws.reset_clients()


def test_error_code_reads_the_code_not_the_message() -> None:
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": "ResourceInUse", "Message": "x"}}, "CreateTrainingJob")
    assert aws.error_code(exc) == "ResourceInUse"
    assert aws.error_message(exc) == "x"
    assert aws.error_code(ValueError("ResourceInUse")) is None
    throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "X")
    assert aws.is_throttling(throttled)


def test_metrics_namespace_default_matches_resources() -> None:
    from shared.observability import DEFAULT_NAMESPACE

    assert DEFAULT_NAMESPACE == METRICS_NAMESPACE
