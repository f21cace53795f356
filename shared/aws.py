"""The one place boto3 clients are made: lazily, once per service, never at import time.

boto3 itself is imported on the first call, so a handler module imports fast and tests,
moto and the local cloud can point clients anywhere: boto3 honours `AWS_ENDPOINT_URL` and
`AWS_ENDPOINT_URL_<SERVICE>` (read when the client is made). Call `reset_clients()` after
changing the environment or starting a mock (a client made before a mock is not mocked).

Error helpers read the error *code* of a botocore ClientError, never its message.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient

#: Error codes that mean "try again later" (the state machine retries TransientServiceError).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
    }
)


@functools.cache
def data_loader() -> Any:
    """botocore's data loader (service models, endpoints, partitions), one per process and
    shared by every client and by shared.constraints, so each JSON file is parsed once: a
    session of its own per client re-parsed them all, and the SageMaker model alone is
    ~0.25 s of CPU (validate's instance-type check read it again after its client had)."""
    import botocore.session

    return botocore.session.get_session().get_component("data_loader")


@functools.cache
def client(service: str) -> Any:
    """A cached boto3 client for `service` (standard retry mode, 10 attempts); a session of
    its own (sessions are not thread-safe), with the process's one data loader."""
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.get_session()
    core.register_component("data_loader", data_loader())
    config = Config(retries={"mode": "standard", "max_attempts": 10}, connect_timeout=5)
    session = boto3.session.Session(botocore_session=core)
    return session.client(service, config=config)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget every cached client (tests; after the environment changed)."""
    client.cache_clear()
    data_loader.cache_clear()


def sagemaker() -> SageMakerClient:
    result: SageMakerClient = client("sagemaker")
    return result


def sagemaker_runtime() -> SageMakerRuntimeClient:
    result: SageMakerRuntimeClient = client("sagemaker-runtime")
    return result


def s3() -> S3Client:
    result: S3Client = client("s3")
    return result


def stepfunctions() -> SFNClient:
    result: SFNClient = client("stepfunctions")
    return result


def sns() -> SNSClient:
    result: SNSClient = client("sns")
    return result


def dynamodb() -> DynamoDBClient:
    result: DynamoDBClient = client("dynamodb")
    return result


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (None for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def error_message(exc: BaseException) -> str:
    """The AWS error message (for people and error causes, never for branching)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(exc)


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES
