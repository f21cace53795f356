"""Where an execution ended, from its history newest first (shared/execution_history.py):
the state it failed in, for the attempt (first run or redrive) an event is about."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from shared.execution_history import EXECUTION_ENDS, details_of, find_ending


def entered(name: str) -> dict[str, Any]:
    return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}}


def exited(name: str) -> dict[str, Any]:
    return {"type": "TaskStateExited", "stateExitedEventDetails": {"name": name}}


def lambda_failed(error: str, cause: str = "c") -> dict[str, Any]:
    return {
        "type": "LambdaFunctionFailed",
        "lambdaFunctionFailedEventDetails": {"error": error, "cause": cause},
    }


def ended(kind: str, error: str | None = None, cause: str | None = None) -> dict[str, Any]:
    details = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
    key = f"{kind[0].lower()}{kind[1:]}EventDetails"
    return {"type": kind, key: details}


def redriven(count: int) -> dict[str, Any]:
    return {"type": "ExecutionRedriven", "executionRedrivenEventDetails": {"redriveCount": count}}


FIRST_RUN = [
    {"type": "ExecutionStarted"},
    entered("ValidateInput"),
    exited("ValidateInput"),
    entered("RegisterModel"),
    lambda_failed("TransientServiceError"),  # retried
    lambda_failed("ClientError", "AccessDeniedException"),
    ended("ExecutionFailed", "ClientError", "AccessDeniedException"),
]
REDRIVE = [
    redriven(1),
    entered("RegisterModel"),
    exited("RegisterModel"),
    entered("UpdateEndpoint"),
    lambda_failed("EndpointUpdateFailedError", "rolled back"),
    ended("ExecutionFailed", "EndpointUpdateFailedError", "rolled back"),
]


def newest_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(reversed(events))


def test_the_failed_state_is_the_last_one_entered_before_the_execution_failed() -> None:
    ending = find_ending(newest_first(FIRST_RUN), 0)
    assert ending is not None
    assert (ending.status, ending.state) == ("FAILED", "RegisterModel")
    assert (ending.error, ending.cause) == ("ClientError", "AccessDeniedException")
    assert ending.redrive_count == 0


def test_a_redriven_execution_names_the_state_of_the_attempt_asked_for() -> None:
    history = newest_first(FIRST_RUN + REDRIVE)
    latest = find_ending(history, 1)
    assert latest is not None
    assert (latest.state, latest.error, latest.redrive_count) == (
        "UpdateEndpoint", "EndpointUpdateFailedError", 1
    )  # fmt: skip
    # the first attempt's event, read after the redrive failed too: still its own state
    first = find_ending(history, 0)
    assert first is not None
    assert (first.state, first.error, first.redrive_count) == ("RegisterModel", "ClientError", 0)
    # no count given: the newest attempt
    newest = find_ending(history, None)
    assert newest is not None
    assert newest.state == "UpdateEndpoint"
    assert find_ending(history, 2) is None  # no such attempt


def test_a_redrive_still_running_is_skipped_for_the_attempt_that_ended() -> None:
    running = [redriven(1), entered("RegisterModel")]
    ending = find_ending(newest_first(FIRST_RUN + running), 0)
    assert ending is not None
    assert ending.state == "RegisterModel"
    assert ending.redrive_count == 0


@pytest.mark.parametrize(
    ("kind", "status"), [("ExecutionTimedOut", "TIMED_OUT"), ("ExecutionAborted", "ABORTED")]
)
def test_timed_out_and_stopped_executions_name_the_state_that_was_running(
    kind: str, status: str
) -> None:
    history = [{"type": "ExecutionStarted"}, entered("StartTraining"), exited("StartTraining"),
               {"type": "WaitStateEntered", "stateEnteredEventDetails": {"name": "WaitTraining"}},
               ended(kind)]  # fmt: skip
    ending = find_ending(newest_first(history), 0)
    assert ending is not None
    assert (ending.status, ending.state, ending.error) == (status, "WaitTraining", None)


def test_the_task_error_stands_in_when_the_closing_event_has_none() -> None:
    history = [{"type": "ExecutionStarted"}, entered("Train"), lambda_failed("Boom", "why"),
               {"type": "ExecutionFailed"}]  # fmt: skip
    ending = find_ending(newest_first(history), 0)
    assert ending is not None
    assert (ending.state, ending.error, ending.cause) == ("Train", "Boom", "why")


def test_an_execution_stopped_before_any_state_has_no_state() -> None:
    ending = find_ending(newest_first([{"type": "ExecutionStarted"}, ended("ExecutionAborted")]), 0)
    assert ending is not None
    assert ending.state is None


def test_pages_that_end_inside_the_attempt_still_name_its_state() -> None:
    # (the history was read only up to the page limit: the attempt's start is not in it)
    ending = find_ending(newest_first(FIRST_RUN[3:]), 0)
    assert ending is not None
    assert (ending.state, ending.redrive_count) == ("RegisterModel", None)
    assert find_ending([entered("A")], None) is None  # nothing ended


def test_failure_details_are_found_for_every_history_event_type_that_carries_an_error() -> None:
    # botocore's model is the list: every HistoryEvent type whose details carry `error` is
    # named <lowerCamelType>EventDetails, which is what details_of reads
    model = botocore.session.get_session().get_service_model("stepfunctions")
    members = model.shape_for("HistoryEvent").members
    with_error = 0
    for kind in model.shape_for("HistoryEventType").enum:
        key = f"{kind[0].lower()}{kind[1:]}EventDetails"
        shape = members.get(key)
        if shape is not None and "error" in getattr(shape, "members", {}):
            assert details_of({"type": kind, key: {"error": "E"}}) == {"error": "E"}
            with_error += 1
    assert with_error >= 10  # TaskFailed, LambdaFunctionFailed, TaskTimedOut, ...
    assert set(EXECUTION_ENDS) <= set(model.shape_for("HistoryEventType").enum)
    statuses = set(model.shape_for("ExecutionStatus").enum)
    assert set(EXECUTION_ENDS.values()) <= statuses


def test_state_events_share_their_details_keys() -> None:
    assert details_of(entered("A")) == {"name": "A"}
    assert details_of(exited("A")) == {"name": "A"}
    assert details_of({"type": "WaitStateEntered"}) == {}
