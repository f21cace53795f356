"""The failure notification (functions/notify): an unsuccessful execution's status change
event -> the state it failed in, read from its history newest first -> one message on the
topic, read back from an SQS queue subscribed to it (moto), within SNS's limits."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from fn_support import ACCOUNT, EXECUTION, EXECUTION_ARN, REGION, event

from functions.notify import logic
from functions.notify.handler import lambda_handler
from shared import aws
from shared.adapters.sns import MESSAGE_MAX_BYTES, SUBJECT_MAX_CHARS, Topic, safe_subject
from shared.adapters.stepfunctions import HISTORY_PAGE_SIZE, StepFunctions
from shared.models import StatusChangeEvent
from shared.settings import reset_settings

TOPIC = "sfn-mlops-notifications"
NOW = "2026-12-01T10:40:00Z"


def _event(kind: str, id_: int, **details: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "id": id_, "timestamp": NOW}
    if kind.endswith("StateEntered"):
        out["stateEnteredEventDetails"] = details
    elif kind.endswith("StateExited"):
        out["stateExitedEventDetails"] = details
    elif details:
        out[f"{kind[0].lower()}{kind[1:]}EventDetails"] = details
    return out


#: PollTraining failed after a Start/Wait/Poll loop: newest first, as reverseOrder answers
HISTORY = [
    _event("ExecutionFailed", 9, error="JobFailedError", cause="see the job"),
    _event("LambdaFunctionFailed", 8, error="JobFailedError", cause="see the job"),
    _event("LambdaFunctionScheduled", 7, resource="arn:poll", input="{}"),
    _event("TaskStateEntered", 6, name="PollTraining", input="{}"),
    _event("WaitStateExited", 5, name="WaitTraining", output="{}"),
    _event("WaitStateEntered", 4, name="WaitTraining", input="{}"),
    _event("TaskStateExited", 3, name="StartTraining", output="{}"),
    _event("TaskStateEntered", 2, name="StartTraining", input="{}"),
    _event("ExecutionStarted", 1, input="{}", roleArn="arn:aws:iam::1:role/r"),
]


@pytest.fixture
def inbox(moto: None, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """The topic (moto) with an SQS queue subscribed (raw delivery): (topic ARN, reader)."""
    sns, sqs = aws.sns(), aws.client("sqs")
    topic = sns.create_topic(Name=TOPIC)["TopicArn"]
    url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue["QueueArn"],
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic)
    reset_settings()

    def read() -> list[str]:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        return [m["Body"] for m in out.get("Messages", [])]

    return topic, read


def stub_history(pages: list[list[dict[str, Any]]]) -> tuple[Any, Stubber]:
    """A Step Functions client answering GetExecutionHistory newest first, page by page;
    each request must ask for reverseOrder and full pages (and the previous page's token)."""
    client = boto3.session.Session().client("stepfunctions", region_name=REGION)
    stub = Stubber(client)
    for number, page in enumerate(pages):
        expected: dict[str, Any] = {
            "executionArn": EXECUTION_ARN,
            "reverseOrder": True,
            "maxResults": HISTORY_PAGE_SIZE,
        }
        if number:
            expected["nextToken"] = f"t{number}"
        response: dict[str, Any] = {"events": page}
        if number + 1 < len(pages):
            response["nextToken"] = f"t{number + 1}"
        stub.add_response("get_execution_history", response, expected)
    return client, stub


def test_the_message_names_the_failed_state_error_cause_and_console_link(
    inbox: tuple[str, Any], context: Any
) -> None:
    # Given the history of an execution that failed at PollTraining, in two pages
    _topic, read = inbox
    client, stub = stub_history([HISTORY[:4], HISTORY[4:]])
    # When its FAILED status change event reaches the function
    with stub:
        out = _invoke_with(client, event("sfn_execution_failed"), context)
    # Then one message names the state, the error, the readable cause and the console link
    assert out["failed_state"] == "PollTraining"
    (body,) = read()
    message = json.loads(body)
    assert message["failed_state"] == "PollTraining"
    assert message["status"] == "FAILED"
    assert message["execution_name"] == EXECUTION
    assert message["error"] == "JobFailedError"
    assert message["cause"] == event("sfn_execution_failed")["detail"]["cause"]
    assert message["redrive_count"] == 0
    assert message["console_url"] == (
        f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}"
        f"#/v2/executions/details/{EXECUTION_ARN}"
    )
    summary = message["summary"]
    assert summary.startswith(f"sfn-mlops execution {EXECUTION} FAILED at PollTraining")
    assert 'AlgorithmError: the target column has "7"' in summary  # the Lambda's message
    assert "errorType" not in summary
    assert "redrive" in message["next_step"]
    assert EXECUTION in message["next_step"]
    assert body.startswith('{\n  "summary"')  # pretty-printed: readable in an e-mail
    stub.assert_no_pending_responses()


def _invoke_with(client: Any, payload: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the handler with `client` as the factory's Step Functions client."""
    import unittest.mock

    with unittest.mock.patch.object(aws, "stepfunctions", return_value=client):
        result: dict[str, Any] = lambda_handler(payload, context)
    return result


def topic_and_sfn(inbox: tuple[str, Any], pages: list[list[dict[str, Any]]]) -> Any:
    topic, _ = inbox
    client, stub = stub_history(pages)
    return Topic(aws.sns(), topic), StepFunctions(client), stub


def change(status: str, **detail: Any) -> StatusChangeEvent:
    return StatusChangeEvent.model_validate(
        {"region": REGION, "detail": {"executionArn": EXECUTION_ARN, "name": EXECUTION,
                                      "status": status, **detail}}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "closing", "words"),
    [("TIMED_OUT", "ExecutionTimedOut", "TIMED_OUT in WaitTraining (the state running when"),
     ("ABORTED", "ExecutionAborted", "ABORTED (stopped) in WaitTraining")],
)  # fmt: skip
def test_timed_out_and_stopped_executions_read_as_such(
    inbox: tuple[str, Any], status: str, closing: str, words: str
) -> None:
    topic, sfn, stub = topic_and_sfn(inbox, [[_event(closing, 6), *HISTORY[4:]]])
    with stub:
        out = logic.notify(change(status, redriveCount=0), sfn, topic)
    assert out.failed_state == "WaitTraining"
    message = json.loads(inbox[1]()[0])
    assert message["status"] == status
    assert words in message["summary"]
    assert message["error"] is None
    assert "None" not in message["summary"]


def test_a_redriven_execution_names_the_state_of_its_latest_attempt(
    inbox: tuple[str, Any],
) -> None:
    # Given the first run failed at PollTraining, the redrive at RegisterModel
    redrive = [
        _event("ExecutionFailed", 14, error="ClientError", cause="AccessDenied"),
        _event("LambdaFunctionFailed", 13, error="ClientError", cause="AccessDenied"),
        _event("TaskStateEntered", 12, name="RegisterModel", input="{}"),
        _event("TaskStateExited", 11, name="PollTraining", output="{}"),
        _event("TaskStateEntered", 10, name="PollTraining", input="{}"),
        _event("ExecutionRedriven", 10, redriveCount=1),
    ]
    topic, sfn, stub = topic_and_sfn(inbox, [redrive + HISTORY])
    with stub:
        out = logic.notify(change("FAILED", error="ClientError", redriveCount=1), sfn, topic)
    assert out.failed_state == "RegisterModel"
    assert json.loads(inbox[1]()[0])["redrive_count"] == 1


def test_the_history_is_read_lazily_and_within_the_page_bound(inbox: tuple[str, Any]) -> None:
    # Given a history whose attempt start is further back than the pages allowed
    _topic, _ = inbox
    pages = [[HISTORY[0], HISTORY[3]], [HISTORY[4]], [HISTORY[5]]]
    client, stub = stub_history(pages)
    sfn = StepFunctions(client)
    with stub:
        events = list(sfn.history_newest_first(EXECUTION_ARN, max_pages=2))
    # Then exactly two pages were asked for (a third stays unread)
    assert [e["id"] for e in events] == [9, 6, 5]


def test_an_unreadable_history_still_notifies_and_says_why(inbox: tuple[str, Any]) -> None:
    topic, _ = inbox
    client = boto3.session.Session().client("stepfunctions", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error("get_execution_history", "AccessDeniedException", "not authorized")
    with stub:
        out = logic.notify(change("FAILED", error="E", cause="C", redriveCount=0),
                           StepFunctions(client), Topic(aws.sns(), topic))  # fmt: skip
    assert out.failed_state is None
    message = json.loads(inbox[1]()[0])
    assert (message["error"], message["cause"]) == ("E", "C")
    assert "AccessDeniedException" in message["failed_state_unknown_because"]
    assert "FAILED at an unknown state" in message["summary"]


def test_a_huge_cause_is_truncated_to_sns_message_size(inbox: tuple[str, Any]) -> None:
    # Given a cause of multi-byte characters far over SNS's 256 KiB
    topic, sfn, stub = topic_and_sfn(inbox, [HISTORY])
    cause = "é\n" * 200_000
    with stub:
        logic.notify(change("FAILED", error="E", cause=cause, redriveCount=0), sfn, topic)
    (body,) = inbox[1]()
    assert len(body.encode()) <= MESSAGE_MAX_BYTES
    message = json.loads(body)
    assert message["cause"].endswith(logic.TRUNCATED)
    assert message["cause"].startswith("é\né\n")
    assert message["failed_state"] == "PollTraining"


def test_the_subject_fits_sns() -> None:
    subject = safe_subject("sfn-mlops FAILED at PollTraining: " + "x" * 200 + "\n")
    assert len(subject) == SUBJECT_MAX_CHARS
    assert "\n" not in safe_subject("a\nb")


def test_sns_limits_are_the_ones_botocore_documents() -> None:
    model = botocore.session.get_session().get_service_model("sns")
    members = model.operation_model("Publish").input_shape.members
    assert f"{MESSAGE_MAX_BYTES:,} bytes" in members["Message"].documentation
    assert f"less than {SUBJECT_MAX_CHARS + 1} characters" in members["Subject"].documentation


def test_an_event_without_a_name_uses_the_arn() -> None:
    bare = StatusChangeEvent.model_validate(
        {"detail": {"executionArn": EXECUTION_ARN, "status": "FAILED"}}
    )
    assert bare.detail.execution_name == EXECUTION
    assert ACCOUNT in logic.console_url(EXECUTION_ARN)
