"""sfn_mlops.local.lambdas: moto's Lambda Invoke answers from Python callables, shaped
exactly like the Lambda Invoke API (payload, X-Amz-Function-Error, errorType)."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.server import ThreadedMotoServer

from sfn_mlops.local.lambdas import (
    UNKNOWN_ERROR,
    LambdaDispatcher,
    LambdaResult,
    LambdaServiceError,
)

REGION = "us-east-1"


class ModelNotReadyError(Exception):
    pass


def _code() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("h.py", "def h(event, context):\n    return event\n")
    return buffer.getvalue()


def _create(client: Any, iam: Any, *names: str) -> dict[str, str]:
    role = iam.create_role(RoleName="seam", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return {
        n: client.create_function(
            FunctionName=n,
            Runtime="python3.11",
            Role=role,
            Handler="h.h",
            Code={"ZipFile": _code()},
        )["FunctionArn"]
        for n in names
    }


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def lam(aws: None) -> Any:
    return boto3.client("lambda", region_name=REGION)


@pytest.fixture
def arns(lam: Any) -> dict[str, str]:
    return _create(lam, boto3.client("iam", region_name=REGION), "ok", "bad", "other")


def _invoke(lam: Any, name: str, payload: Any = None, **kwargs: Any) -> tuple[str | None, Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}), **kwargs)
    body = response["Payload"].read()
    return response.get("FunctionError"), json.loads(body) if body else None


def test_result_is_the_payload_by_name_and_by_arn(lam: Any, arns: dict[str, str]) -> None:
    dispatcher = LambdaDispatcher()
    dispatcher.register("ok", lambda event: {"echo": event, "n": 1})
    with dispatcher.install():
        assert _invoke(lam, "ok", {"a": 1}) == (None, {"echo": {"a": 1}, "n": 1})
        assert _invoke(lam, arns["ok"], {"b": 2}) == (None, {"echo": {"b": 2}, "n": 1})
    assert [c.payload for c in dispatcher.calls_to("ok")] == [{"a": 1}, {"b": 2}]


def test_exception_is_an_unhandled_function_error_named_after_its_class(
    lam: Any, arns: dict[str, str]
) -> None:
    def handler(event: Any) -> Any:
        raise ModelNotReadyError(f"model {event['model']} is not ready")

    dispatcher = LambdaDispatcher()
    dispatcher.register("bad", handler)
    with dispatcher.install():
        function_error, payload = _invoke(lam, "bad", {"model": "m1"})
    assert function_error == "Unhandled"
    assert payload["errorType"] == "ModelNotReadyError"
    assert payload["errorMessage"] == "model m1 is not ready"
    # the trace starts in the handler, as the Lambda runtime reports it
    assert "in handler" in payload["stackTrace"][0]
    assert all("lambdas.py" not in frame for frame in payload["stackTrace"])
    assert dispatcher.calls[0].error_type == "ModelNotReadyError"


def test_explicit_outcomes_crash_and_marshal_error(lam: Any, arns: dict[str, str]) -> None:
    @dataclass(frozen=True)
    class WorkerReply:  # any object with payload + function_error will do
        payload: Any
        function_error: str | None

    dispatcher = LambdaDispatcher()
    dispatcher.register("ok", lambda _: WorkerReply({"done": True}, None))
    dispatcher.register("bad", lambda _: LambdaResult.unknown("Task timed out after 3.00 seconds"))
    dispatcher.register("other", lambda _: {"not json": object()})
    with dispatcher.install():
        assert _invoke(lam, "ok") == (None, {"done": True})
        error, payload = _invoke(lam, "bad")
        assert (error, payload["errorType"]) == ("Unhandled", UNKNOWN_ERROR)
        error, payload = _invoke(lam, "other")
        assert (error, payload["errorType"]) == ("Unhandled", "Runtime.MarshalError")


def test_service_errors_fail_the_invoke_call(lam: Any, arns: dict[str, str]) -> None:
    def throttled(_: Any) -> Any:
        raise LambdaServiceError("TooManyRequestsException", "Rate exceeded", 429)

    dispatcher = LambdaDispatcher()
    dispatcher.register("ok", throttled)
    no_retries = boto3.client(
        "lambda", region_name=REGION, config=boto3.session.Config(retries={"max_attempts": 0})
    )
    with dispatcher.install():
        with pytest.raises(ClientError) as throttle:
            no_retries.invoke(FunctionName="ok", Payload=b"{}")
        # a function that exists but has no handler, and one that does not exist at all
        with pytest.raises(ClientError) as unregistered:
            lam.invoke(FunctionName="other", Payload=b"{}")
        with pytest.raises(ClientError) as missing:
            lam.invoke(FunctionName="nope", Payload=b"{}")
    assert throttle.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert throttle.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert unregistered.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "no handler registered" in unregistered.value.response["Error"]["Message"]
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_event_invocation_is_accepted_then_run(lam: Any, arns: dict[str, str]) -> None:
    ran = threading.Event()
    dispatcher = LambdaDispatcher()
    dispatcher.register("ok", lambda event: ran.set())
    with dispatcher.install():
        response = lam.invoke(FunctionName="ok", InvocationType="Event", Payload=b'{"x": 1}')
        assert response["StatusCode"] == 202
        assert ran.wait(timeout=10)


def test_install_restores_moto_and_refuses_nesting(lam: Any, arns: dict[str, str]) -> None:
    originals = (LambdaBackend.__dict__["invoke"], LambdaSimpleBackend.__dict__["invoke"])
    first, second = LambdaDispatcher(), LambdaDispatcher()
    with first.install():
        assert LambdaBackend.__dict__["invoke"] is not originals[0]
        with pytest.raises(RuntimeError), second.install():
            pass
    assert (LambdaBackend.__dict__["invoke"], LambdaSimpleBackend.__dict__["invoke"]) == originals


def test_passthrough_leaves_unregistered_functions_to_moto(aws_env: None) -> None:
    # moto's own Docker-less Lambda echoes the payload
    dispatcher = LambdaDispatcher(passthrough=True)
    dispatcher.register("ok", lambda _: {"from": "dispatcher"})
    with mock_aws(config={"lambda": {"use_docker": False}}), dispatcher.install():
        client = boto3.client("lambda", region_name=REGION)
        _create(client, boto3.client("iam", region_name=REGION), "ok", "other")
        assert _invoke(client, "ok") == (None, {"from": "dispatcher"})
        assert _invoke(client, "other", {"echo": 1}) == (None, {"echo": 1})


def test_works_behind_a_threaded_moto_server(aws_env: None) -> None:
    # Given moto as a server on loopback in this process (what the local cloud runs)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("lambda", region_name=REGION, endpoint_url=endpoint)
        iam = boto3.client("iam", region_name=REGION, endpoint_url=endpoint)
        _create(client, iam, "served")
        seen: list[str] = []

        def handler(event: Any) -> Any:
            seen.append(threading.current_thread().name)
            if event.get("fail"):
                raise ModelNotReadyError("still warming up")
            return {"ok": event["n"] + 1}

        dispatcher = LambdaDispatcher()
        dispatcher.register("served", handler)
        # When invoked over HTTP
        with dispatcher.install():
            ok = _invoke(client, "served", {"n": 41})
            failed = _invoke(client, "served", {"fail": True})
        # Then the same answers as in-process, served on the server's threads
        assert ok == (None, {"ok": 42})
        assert failed[0] == "Unhandled"
        assert failed[1]["errorType"] == "ModelNotReadyError"
        assert threading.current_thread().name not in seen
    finally:
        server.stop()
