"""The handler wrapper (correlation id, EMF metrics, failure logging), validation messages,
the poll schedule."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInputError, JobFailedError, validation_problems
from shared.handler import lambda_entry, parse
from shared.models import PipelineInput, PollRequest
from shared.observability import count, logger, metrics
from shared.polling import polls_needed, schedule_seconds, wait_seconds


@dataclass
class Context:
    function_name: str = "sfn-mlops-train"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:sfn-mlops-train"
    aws_request_id: str = "req-1"


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Any:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def emf_blobs(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    return [x for x in lines if "_aws" in x]


def test_entry_sets_correlation_id_and_flushes_emf(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a handler that counts a metric and logs
    @lambda_entry()
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        count("JobsStarted")
        logger.info("working")
        return {"ok": True}

    # WHEN invoked with an execution's state (the log stream captured)
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        result = handler({"execution_name": "exec-1"}, Context())
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
    # THEN the result passes through, JSON logs carry the execution name and the Lambda
    # context, and an EMF blob is printed
    assert result == {"ok": True}
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    working = [x for x in logs if x["message"] == "working"]
    assert working[0]["correlation_id"] == "exec-1"
    assert working[0]["function_request_id"] == "req-1"
    blobs = emf_blobs(capsys.readouterr().out)
    jobs = [b for b in blobs if "JobsStarted" in b]
    assert jobs, blobs
    assert jobs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SfnMlops"


def test_entry_logs_named_failures_and_reraises(caplog: pytest.LogCaptureFixture) -> None:
    @lambda_entry()
    def handler(event: dict[str, Any], context: Any) -> None:
        raise JobFailedError("AlgorithmError: boom")

    with pytest.raises(JobFailedError):
        handler({"execution_name": "exec-2"}, Context())
    failed = [r for r in caplog.records if r.getMessage() == "failed"]
    assert failed[0].__dict__["error"] == "JobFailedError"


def test_parse_names_every_bad_field() -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse(PollRequest, {"job_name": "j", "job_type": "batch", "attempt": -1})
    message = str(raised.value)
    for field in ("job_type", "attempt", "poll_interval_seconds", "max_polls"):
        assert f"{field}: " in message


def test_validation_problems_paths_and_fixes() -> None:
    class Inner(BaseModel):
        x: int

    class Outer(BaseModel):
        model_config = {"extra": "forbid"}
        inner: Inner
        items: list[int]

    with pytest.raises(ValidationError) as raised:
        Outer.model_validate({"inner": {"x": "nope"}, "items": [1, "b"], "typo": 1})
    problems = validation_problems(raised.value)
    assert any(p.startswith("inner.x: ") and "'nope'" in p for p in problems)
    assert any(p.startswith("items[1]: ") for p in problems)
    assert "typo: unknown key; remove it or fix its spelling" in problems


def test_model_level_error_has_a_readable_path() -> None:
    from shared.resources import pipeline_defaults

    data = pipeline_defaults() | {"image_uri": "i", "raw_data_uri": "s3://bucket-x/data/"}
    data["max_poll_interval_seconds"] = 1
    with pytest.raises(ValidationError) as raised:
        PipelineInput.model_validate(data)
    assert validation_problems(raised.value) == [
        "(input): max_poll_interval_seconds must be >= poll_interval_seconds"
    ]


def test_wait_grows_geometrically_to_the_cap() -> None:
    assert [wait_seconds(a, 30, 600) for a in range(7)] == [30, 60, 120, 240, 480, 600, 600]
    assert wait_seconds(500, 30, 600) == 600


def test_schedule_and_polls_needed_agree() -> None:
    needed = polls_needed(3600, 30, 600)
    assert schedule_seconds(needed, 30, 600) >= 3600
    assert schedule_seconds(needed - 1, 30, 600) < 3600


def test_lambdas_metadata_check_agrees_with_the_local_clouds_regex() -> None:
    # GIVEN the CustomerMetadataValue pattern, checked two ways: the Lambda's character
    # class (no `regex` package in the Lambda) and the local cloud's `regex` full match
    from sfn_mlops.local.strict import compiled
    from shared.constraints import METADATA_VALUE_SHAPE, service_shapes, string_problem

    pattern = service_shapes()[METADATA_VALUE_SHAPE]["pattern"]
    values = [
        "plain", "Grüße 日本 ١٢٣", "a_b.c:d/e=f+g-h@i", "tab\there", "new\nline", 'quote"',
        "nul\x00", "hash#", "amp&", "pct%", "paren(", "emoji🙂", "comma,", "nbsp\u00a0x",
        "back\\slash", "star*", "ideographic\u3000space", "Ⅻ roman", "x²",
    ]  # fmt: skip
    for value in values:
        # WHEN each value is checked both ways / THEN they agree
        lambda_ok = string_problem(value, METADATA_VALUE_SHAPE) is None
        regex_ok = compiled(pattern).fullmatch(value) is not None
        assert lambda_ok == regex_ok, value
