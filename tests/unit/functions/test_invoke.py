"""invoke: rows | csv | sample rows from S3 -> InvokeEndpoint (text/csv in, JSON out)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody
from fn_support import BUCKET, make_bucket
from sm_stubs import stubbed

from functions.invoke import handler as invoke_handler
from functions.invoke.logic import csv_rows, invoke, parse_predictions
from shared import aws
from shared.adapters.runtime import SageMakerRuntime
from shared.adapters.s3 import S3
from shared.errors import InferenceError, InvalidInputError, TransientServiceError
from shared.models import InvokeOutput, InvokeRequest
from shared.settings import InvokeSettings, load_settings

ENDPOINT = "sfn-mlops-endpoint"
SAMPLE_KEY = "runs/exec/preprocess/sample/sample.csv"


def body(data: Any) -> StreamingBody:
    raw = json.dumps(data).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def runtime_answering(expected_body: bytes | None, answer: Any) -> tuple[Any, Any]:
    client, stub = stubbed("sagemaker-runtime")
    params = None
    if expected_body is not None:
        params = {
            "EndpointName": ENDPOINT,
            "Body": expected_body,
            "ContentType": "text/csv",
            "Accept": "application/json",
        }
    stub.add_response("invoke_endpoint", {"Body": body(answer)}, params)
    return client, stub


def run(request: dict[str, Any], client: Any) -> InvokeOutput:
    return invoke(
        InvokeRequest.model_validate(request),
        load_settings(InvokeSettings),
        SageMakerRuntime(client),
        S3(aws.s3()),
    )


def test_rows_are_sent_as_csv_and_predictions_returned() -> None:
    # GIVEN two rows and an endpoint answering two scores
    client, stub = runtime_answering(b"1.0,2.5\n3.0,4.0\n", {"predictions": [0.1, 0.9]})
    # WHEN invoked
    with stub:
        out = run({"endpoint_name": ENDPOINT, "rows": [[1, 2.5], [3, 4]]}, client)
    # THEN one prediction per row
    assert out == InvokeOutput(endpoint_name=ENDPOINT, row_count=2, predictions=[0.1, 0.9])


def test_csv_is_sent_with_its_header_for_the_server_to_map() -> None:
    client, stub = runtime_answering(b"a,b\n1,2\n3,4\n", [0.2, 0.8])
    with stub:
        out = run({"endpoint_name": ENDPOINT, "csv": "a,b\n1,2\n3,4\n"}, client)
    assert (out.row_count, out.predictions) == (2, [0.2, 0.8])


def test_raw_categorical_rows_are_quoted_csv() -> None:
    # GIVEN rows with a categorical value holding a comma, and a missing value
    client, stub = runtime_answering(b'"red, dark",1.5\nblue,\n', [0.3, 0.4])
    with stub:
        out = run({"endpoint_name": ENDPOINT, "rows": [["red, dark", 1.5], ["blue", None]]}, client)
    assert out.row_count == 2


def test_sample_uri_reads_at_most_max_rows_feature_rows(moto: None) -> None:
    # GIVEN the preprocess sample (header + 5 feature rows) under its prefix
    make_bucket()
    rows = "\n".join(f"{i},{i + 0.5}" for i in range(5))
    aws.s3().put_object(Bucket=BUCKET, Key=SAMPLE_KEY, Body=f"f1,f2\n{rows}\n".encode())
    client, stub = runtime_answering(b"f1,f2\n0,0.5\n1,1.5\n2,2.5\n", [1, 0, 1])
    # WHEN the smoke test invokes with the sample prefix and max_rows 3
    uri = f"s3://{BUCKET}/runs/exec/preprocess/sample"
    with stub:
        out = run({"endpoint_name": ENDPOINT, "sample_uri": uri, "max_rows": 3}, client)
    # THEN three rows were sent (with the header) and three predictions came back
    assert (out.row_count, out.predictions) == (3, [1.0, 0.0, 1.0])


def test_endpoint_error_is_inference_error_with_its_message() -> None:
    # GIVEN the model container rejects the rows
    client, stub = stubbed("sagemaker-runtime")
    stub.add_client_error(
        "invoke_endpoint", "ModelError", "Received client error (400): expected 30 features", 424
    )
    # WHEN / THEN the endpoint's words reach the caller
    with stub, pytest.raises(InferenceError, match="expected 30 features"):
        run({"endpoint_name": ENDPOINT, "rows": [[1.0]]}, client)


def test_throttling_is_transient_not_an_inference_error() -> None:
    client, stub = stubbed("sagemaker-runtime")
    stub.add_client_error("invoke_endpoint", "ThrottlingException", "slow down", 400)
    with stub, pytest.raises(TransientServiceError):
        run({"endpoint_name": ENDPOINT, "rows": [[1.0]]}, client)


def test_prediction_count_mismatch_is_an_error() -> None:
    client, stub = runtime_answering(None, [0.5])
    with stub, pytest.raises(InferenceError, match="1 predictions for 2 rows"):
        run({"endpoint_name": ENDPOINT, "rows": [[1.0], [2.0]]}, client)


@pytest.mark.parametrize(
    "answer",
    [[0.1, 0.2], {"predictions": [0.1, 0.2]}, [{"score": 0.1}, {"score": 0.2}], [[0.1], [0.2]]],
)
def test_prediction_shapes(answer: Any) -> None:
    assert parse_predictions(json.dumps(answer).encode(), ENDPOINT) == [0.1, 0.2]


@pytest.mark.parametrize("answer", [b"not json", b'{"x": 1}', b'["a"]'])
def test_unreadable_predictions(answer: bytes) -> None:
    with pytest.raises(InferenceError):
        parse_predictions(answer, ENDPOINT)


def test_malformed_csv_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="csv: not valid CSV"):
        csv_rows('a,b\n"1,2\n\x00')


def test_handler_rejects_two_sources(context: Any) -> None:
    with pytest.raises(InvalidInputError, match="exactly one of rows, csv, sample_uri"):
        invoke_handler.lambda_handler(
            {"endpoint_name": ENDPOINT, "rows": [[1.0]], "csv": "1\n"}, context
        )


def test_handler_refuses_sample_outside_artifact_bucket(context: Any) -> None:
    with pytest.raises(InvalidInputError, match="artifact bucket"):
        invoke_handler.lambda_handler(
            {"endpoint_name": ENDPOINT, "sample_uri": "s3://someone-elses-bucket/x.csv"}, context
        )


def test_handler_happy_path(context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the runtime client of the factory answers (stubbed)
    client, stub = runtime_answering(b"1.0,2.0\n", [0.7])
    monkeypatch.setattr(invoke_handler.aws, "sagemaker_runtime", lambda: client)
    # WHEN the Lambda is invoked as the smoke test would
    with stub:
        out = invoke_handler.lambda_handler({"endpoint_name": ENDPOINT, "rows": [[1, 2]]}, context)
    # THEN it answers InvokeOutput as JSON
    assert out == {"endpoint_name": ENDPOINT, "row_count": 1, "predictions": [0.7]}
