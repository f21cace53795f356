"""Data capture in SageMaker's format: record fields, encodings, S3 keys, sampling."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

from sfn_mlops.local.capture import Capture, CaptureSpec, capture_key

CONFIG = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 100,
    "DestinationS3Uri": "s3://bucket/capture",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {
        "CsvContentTypes": ["text/csv"],
        "JsonContentTypes": ["application/json"],
    },
}


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803
        self.objects[(Bucket, Key)] = Body


def _lines(s3: FakeS3) -> list[dict[str, Any]]:
    return [json.loads(line) for body in s3.objects.values() for line in body.splitlines()]


def test_a_record_has_sagemakers_fields_and_encodings() -> None:
    # GIVEN an endpoint capturing input and output, CSV in and JSON out, and a binary request
    s3 = FakeS3()
    capture = Capture(lambda: s3)
    spec = CaptureSpec.of(CONFIG)
    csv_headers = {"Content-Type": "text/csv"}
    capture.record(spec, "ep", "AllTraffic", b"1.5,2\n3,4", csv_headers,
                   b'{"predictions":[0.9,0.1]}', {"Content-Type": "application/json"})  # fmt: skip
    capture.record(spec, "ep", "AllTraffic", b"\x00\xff", {"content-type": "image/png"},
                   b"0.5", {"Content-Type": "text/csv; charset=utf-8"})  # fmt: skip

    # WHEN flushed
    keys = capture.flush()

    # THEN one JSON Lines file per hour with SageMaker's record shape
    assert len(keys) == 1
    first, second = _lines(s3)
    assert set(first) == {"captureData", "eventMetadata", "eventVersion"}
    assert first["eventVersion"] == "0"
    assert first["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv", "mode": "INPUT", "data": "1.5,2\n3,4", "encoding": "CSV"
    }  # fmt: skip
    assert first["captureData"]["endpointOutput"] == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": '{"predictions":[0.9,0.1]}',
        "encoding": "JSON",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["eventMetadata"]["inferenceTime"])
    assert re.fullmatch(r"[0-9a-f-]{36}", first["eventMetadata"]["eventId"])
    assert first["eventMetadata"]["eventId"] != second["eventMetadata"]["eventId"]
    # a content type outside the configured lists is base64; parameters keep the text one
    assert second["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(second["captureData"]["endpointInput"]["data"]) == b"\x00\xff"
    assert second["captureData"]["endpointOutput"]["encoding"] == "CSV"


def test_the_key_is_prefix_endpoint_variant_and_the_utc_hour() -> None:
    spec = CaptureSpec.of(CONFIG)
    assert spec is not None
    when = dt.datetime(2026, 3, 7, 9, 5, 4, 123456, tzinfo=dt.UTC)

    key = capture_key(spec, "my-ep", "AllTraffic", when)

    pattern = r"capture/my-ep/AllTraffic/2026/03/07/09/05-04-123-[0-9a-f-]{36}\.jsonl"
    assert re.fullmatch(pattern, key)


def test_capture_options_and_sampling_are_honoured() -> None:
    s3 = FakeS3()
    capture = Capture(lambda: s3, seed=7)
    inputs_only = CaptureSpec.of(CONFIG | {"CaptureOptions": [{"CaptureMode": "Input"}]})
    capture.record(inputs_only, "ep", "v", b"1", {"Content-Type": "text/csv"}, b"0", {})
    half = CaptureSpec.of(CONFIG | {"InitialSamplingPercentage": 50})
    for _ in range(400):
        capture.record(half, "ep", "v", b"1", {"Content-Type": "text/csv"}, b"0", {})
    none = CaptureSpec.of(CONFIG | {"InitialSamplingPercentage": 0})
    capture.record(none, "ep", "v", b"1", {"Content-Type": "text/csv"}, b"0", {})
    capture.flush()

    records = _lines(s3)
    assert set(records[0]["captureData"]) == {"endpointInput"}
    assert 150 < len(records) - 1 < 250  # about half of 400, none of the 0 % endpoint
    assert CaptureSpec.of(CONFIG | {"EnableCapture": False}) is None
    assert CaptureSpec.of(None) is None
