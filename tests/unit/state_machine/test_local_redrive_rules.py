"""The local cloud's RedriveExecution rules and event shapes (sfn_mlops/local/sfn.py,
events.py), without running an execution: which executions AWS refuses to redrive, where a
redrive re-enters, the status change event, the input transformer's escaping and the
history's pages."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pytest

from sfn_mlops.local.events import input_transform
from sfn_mlops.local.sfn import (
    InvalidToken,
    SimulatedClock,
    history_page,
    not_redrivable_reason,
    status_change_event,
    unsuccessful_state,
)
from shared import resources

DEFINITION = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}})
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def execution(status: str, stopped: dt.datetime | None = NOW, definition: str = DEFINITION) -> Any:
    return SimpleNamespace(
        status=status,
        stop_date=stopped,
        state_machine=SimpleNamespace(definition=definition),
        exec_arn="arn:aws:states:us-east-1:123456789012:execution:sm:run-1",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:sm",
        name="run-1",
        start_date=NOW - dt.timedelta(minutes=5),
        execution_input="{}",
        output=None,
        error="JobFailedError",
        cause='{"errorMessage": "training job x-1 failed: AlgorithmError: \\"bad\\""}',
        account_id="123456789012",
        region_name="us-east-1",
    )


@pytest.mark.parametrize("status", ["RUNNING", "SUCCEEDED"])
def test_running_and_succeeded_executions_are_not_redrivable(status: str) -> None:
    reason = not_redrivable_reason(execution(status, None), DEFINITION, NOW)
    assert reason is not None
    assert status in reason


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_unsuccessful_executions_are_redrivable_within_14_days(status: str) -> None:
    closed = execution(status, NOW - dt.timedelta(days=13, hours=23))
    assert not_redrivable_reason(closed, DEFINITION, NOW) is None
    old = execution(status, NOW - dt.timedelta(days=14, minutes=1))
    assert "14 days" in str(not_redrivable_reason(old, DEFINITION, NOW))


def test_a_changed_definition_is_not_redrivable_but_reformatting_is_no_change() -> None:
    failed = execution("FAILED")
    changed = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    assert "definition" in str(not_redrivable_reason(failed, changed, NOW))
    same = json.dumps(json.loads(DEFINITION), indent=2)
    assert not_redrivable_reason(failed, same, NOW) is None


def test_the_simulated_clock_advances() -> None:
    clock = SimulatedClock()
    before = clock.now()
    clock.advance(dt.timedelta(days=15))
    assert clock.now() - before >= dt.timedelta(days=15)


def _entered(name: str, data: Any) -> dict[str, Any]:
    return {
        "type": "TaskStateEntered",
        "stateEnteredEventDetails": {"name": name, "input": json.dumps(data)},
    }


def _exited(name: str) -> dict[str, Any]:
    return {"type": "TaskStateExited", "stateExitedEventDetails": {"name": name}}


def test_redrive_re_enters_the_state_that_never_exited_with_its_input() -> None:
    events = [
        {"type": "ExecutionStarted"},
        _entered("StartTraining", {"a": 1}),
        _exited("StartTraining"),
        _entered("PollTraining", {"a": 2}),
        {"type": "TaskFailed"},
        {"type": "ExecutionFailed"},
    ]
    assert unsuccessful_state(events) == ("PollTraining", {"a": 2})
    assert unsuccessful_state([*events[:3]]) is None


def test_status_change_event_has_aws_shape() -> None:
    event = status_change_event(execution("FAILED"), SimulatedClock())
    assert event["source"] == "aws.states"
    assert event["detail-type"] == "Step Functions Execution Status Change"
    assert event["resources"] == [event["detail"]["executionArn"]]
    detail = event["detail"]
    fields = "executionArn stateMachineArn name status startDate stopDate input output error"
    assert {*fields.split(), "cause", "redriveCount", "redriveStatus"} <= set(detail)
    assert detail["status"] == "FAILED"
    assert detail["redriveCount"] == 0
    assert detail["redriveStatus"] == "REDRIVABLE"
    assert isinstance(detail["startDate"], int)  # epoch milliseconds, as AWS sends them


def test_input_transformer_inserts_whole_values_as_json_and_escapes_inside_strings() -> None:
    # (an SNS or other rule target's InputTransformer, as EventBridge applies it)
    event = status_change_event(execution("FAILED"), SimulatedClock())
    transformer = {
        "InputPathsMap": {"name": "$.detail.name", "cause": "$.detail.cause",
                          "count": "$.detail.redriveCount", "arn": "$.detail.executionArn"},
        "InputTemplate": '{"name": <name>, "cause": <cause>, "redrive_count": <count>, '
        '"subject": "failed: <name>", "link": "https://console/#/<arn>"}',
    }  # fmt: skip
    message = json.loads(input_transform(transformer, event))
    assert message["name"] == "run-1"
    assert message["cause"] == event["detail"]["cause"]  # quotes inside survive
    assert message["redrive_count"] == 0
    assert message["subject"] == "failed: run-1"
    assert message["link"] == f"https://console/#/{event['detail']['executionArn']}"


def test_history_pages_newest_first_with_tokens_as_aws_does() -> None:
    events = [{"id": i} for i in range(1, 6)]
    first = history_page(events, reverse=True, max_results=2, token=None)
    assert [e["id"] for e in first["events"]] == [5, 4]
    second = history_page(events, reverse=True, max_results=2, token=first["nextToken"])
    assert [e["id"] for e in second["events"]] == [3, 2]
    last = history_page(events, reverse=True, max_results=2, token=second["nextToken"])
    assert [e["id"] for e in last["events"]] == [1]
    assert "nextToken" not in last
    assert history_page(events, reverse=False, max_results=None, token=None) == {"events": events}
    with pytest.raises(InvalidToken):
        history_page(events, reverse=True, max_results=2, token="forged")


def test_the_rule_pattern_matches_only_unsuccessful_executions_of_this_machine() -> None:
    from moto.events.models import EventPattern

    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:sm"
    pattern = EventPattern.load(json.dumps(resources.execution_status_event_pattern(arn)))
    for status, matches in (("FAILED", True), ("TIMED_OUT", True), ("ABORTED", True),
                            ("SUCCEEDED", False), ("RUNNING", False)):  # fmt: skip
        event = status_change_event(execution(status), SimulatedClock())
        assert pattern.matches_event(event) is matches, status
    other = status_change_event(execution("FAILED"), SimulatedClock())
    other["detail"]["stateMachineArn"] = arn + "-other"
    assert not pattern.matches_event(other)
