"""Inference: rows (inline CSV text, a list of rows, or sample rows read from S3) sent to the
endpoint as text/csv; predictions read back as JSON."""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.runtime import SageMakerRuntime
from shared.adapters.s3 import S3, split_uri
from shared.errors import InferenceError, InvalidInputError
from shared.models import InvokeOutput, InvokeRequest
from shared.settings import InvokeSettings

CONTENT_TYPE = "text/csv"
ACCEPT = "application/json"


def _is_numeric_row(line: str) -> bool:
    try:
        [float(cell) for cell in line.split(",") if cell.strip()]
    except ValueError:
        return False
    return True


def csv_rows(text: str, max_rows: int | None = None) -> list[str]:
    """Non-empty CSV lines; a header (a first row that is not all numbers) is dropped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and not _is_numeric_row(lines[0]):
        lines = lines[1:]
    bad = [i for i, line in enumerate(lines) if not _is_numeric_row(line)]
    if bad:
        raise InvalidInputError(f"csv: rows {bad[:10]} are not all numbers")
    return lines[:max_rows] if max_rows else lines


def sample_rows(s3: S3, uri: str, max_rows: int) -> list[str]:
    """Up to `max_rows` feature rows of a CSV object, or of the first CSV under a prefix."""
    target = uri
    if not uri.endswith(".csv"):
        found = s3.first_object(uri.rstrip("/") + "/", suffix=".csv")
        if found is None:
            raise InvalidInputError(f"sample_uri: no .csv object under {uri}")
        target = found
    lines = s3.read_lines(target, max_rows + 1)  # + a header
    return csv_rows("\n".join(lines), max_rows)


def parse_predictions(body: bytes, endpoint_name: str) -> list[float]:
    """`[0.1, ...]`, `{"predictions": [...]}`, and rows of one number (or {"score": x})."""
    try:
        data: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InferenceError(f"{endpoint_name}: the response is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("predictions")
    if not isinstance(data, list):
        raise InferenceError(f"{endpoint_name}: no list of predictions in the response")
    values: list[float] = []
    for item in data:
        value = item
        if isinstance(value, dict):
            value = value.get("score", value.get("prediction"))
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InferenceError(f"{endpoint_name}: prediction {item!r} is not a number")
        values.append(float(value))
    return values


def invoke(
    request: InvokeRequest, settings: InvokeSettings, runtime: SageMakerRuntime, s3: S3
) -> InvokeOutput:
    if request.rows is not None:
        rows = [",".join(repr(float(v)) for v in row) for row in request.rows]
    elif request.csv is not None:
        rows = csv_rows(request.csv)
    else:
        assert request.sample_uri is not None
        bucket, _ = split_uri(request.sample_uri)
        if bucket != settings.artifact_bucket:
            raise InvalidInputError(
                f"sample_uri: must be in the artifact bucket {settings.artifact_bucket} "
                f"(got {bucket})"
            )
        rows = sample_rows(s3, request.sample_uri, request.max_rows)
    if not rows:
        raise InvalidInputError("no rows to send")
    body = "\n".join(rows) + "\n"
    answer = runtime.invoke(request.endpoint_name, body, CONTENT_TYPE, ACCEPT)
    predictions = parse_predictions(answer, request.endpoint_name)
    if len(predictions) != len(rows):
        raise InferenceError(
            f"{request.endpoint_name}: {len(predictions)} predictions for {len(rows)} rows"
        )
    return InvokeOutput(
        endpoint_name=request.endpoint_name, row_count=len(rows), predictions=predictions
    )
