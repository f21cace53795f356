"""Inference: rows (inline CSV text, a list of rows, or sample rows read from S3) sent to the
endpoint as text/csv; predictions read back as JSON. Values are raw: numbers, or a
categorical column's values as in the training data (the model encodes them)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from shared.adapters.runtime import SageMakerRuntime
from shared.adapters.s3 import S3, split_uri
from shared.errors import InferenceError, InvalidInputError
from shared.models import InvokeOutput, InvokeRequest
from shared.settings import InvokeSettings

CONTENT_TYPE = "text/csv"
ACCEPT = "application/json"


def _is_numeric_row(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row if cell.strip()]
    except ValueError:
        return False
    return True


def _records(text: str) -> list[list[str]]:
    """Non-empty CSV records (stdlib csv: RFC 4180 quoting, so a value may hold a comma)."""
    try:
        reader = csv.reader(io.StringIO(text), strict=True)
        return [r for r in reader if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise InvalidInputError(f"csv: not valid CSV: {exc}") from exc


def to_csv(records: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(["" if v is None else v for v in row] for row in records)
    return out.getvalue()


@dataclass(frozen=True)
class Rows:
    """What is sent: the CSV body, and how many predictions it must give back."""

    body: str
    count: int
    may_have_header: bool = False  # inline CSV: the server skips a row of feature names


def csv_rows(text: str) -> Rows:
    """Inline CSV, sent as given: raw values (numbers or categories), with or without a
    header row of feature names (the model server recognises one)."""
    records = _records(text)
    header = bool(records) and not _is_numeric_row(records[0])
    return Rows(to_csv(records), len(records), may_have_header=header)


def sample_rows(s3: S3, uri: str, max_rows: int) -> Rows:
    """The header and up to `max_rows` rows of a CSV object, or of the first CSV under a
    prefix (preprocess's sample: feature columns only, with its header)."""
    target = uri
    if not uri.endswith(".csv"):
        found = s3.first_object(uri.rstrip("/") + "/", suffix=".csv")
        if found is None:
            raise InvalidInputError(f"sample_uri: no .csv object under {uri}")
        target = found
    records = _records("\n".join(s3.read_lines(target, max_rows + 1)))
    if len(records) < 2:
        raise InvalidInputError(f"sample_uri: {target} has no rows below its header")
    return Rows(to_csv(records[: max_rows + 1]), min(max_rows, len(records) - 1))


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
        rows = Rows(to_csv(request.rows), len(request.rows))
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
    if not rows.count:
        raise InvalidInputError("no rows to send")
    answer = runtime.invoke(request.endpoint_name, rows.body, CONTENT_TYPE, ACCEPT)
    predictions = parse_predictions(answer, request.endpoint_name)
    expected = {rows.count, rows.count - 1} if rows.may_have_header else {rows.count}
    if len(predictions) not in expected:
        raise InferenceError(
            f"{request.endpoint_name}: {len(predictions)} predictions for {rows.count} rows"
        )
    return InvokeOutput(
        endpoint_name=request.endpoint_name, row_count=len(predictions), predictions=predictions
    )
