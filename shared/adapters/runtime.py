"""SageMaker Runtime: InvokeEndpoint, with the endpoint's own error message on failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters._errors import ClientError, code_of, transient_errors
from shared.aws import error_message, is_throttling
from shared.errors import InferenceError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


class SageMakerRuntime:
    def __init__(self, client: SageMakerRuntimeClient) -> None:
        self._client = client

    def invoke(self, endpoint_name: str, body: str, content_type: str, accept: str) -> bytes:
        with transient_errors("InvokeEndpoint"):
            try:
                response = self._client.invoke_endpoint(
                    EndpointName=endpoint_name,
                    Body=body.encode("utf-8"),
                    ContentType=content_type,
                    Accept=accept,
                )
            except ClientError as exc:
                if is_throttling(exc):
                    raise  # -> TransientServiceError
                # ModelError carries the container's message; ValidationError a missing
                # endpoint or a bad request. Either way the caller sees the endpoint's words.
                raise InferenceError(
                    f"{endpoint_name}: {code_of(exc)}: {error_message(exc)}"
                ) from exc
        stream = response["Body"]
        try:
            return stream.read()
        finally:
            stream.close()
