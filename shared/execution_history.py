"""Where an execution ended, read from its history newest first (GetExecutionHistory with
reverseOrder): the state it ended in and the error that ended it, for the attempt (first run
or a redrive) a status change event is about.

AWS's "Step Functions Execution Status Change" event has the error and cause but not the
state, so the failure notification (functions/notify) reads it here. Failure events are
recognised by their details carrying `error` (TaskFailed, LambdaFunctionFailed,
TaskTimedOut, ...: the HistoryEvent shapes of botocore's model, checked by a unit test), so
no list of event types is typed here. Pure: the events come from the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: The events that close an attempt -> the execution status they mean.
EXECUTION_ENDS = {
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
    "ExecutionSucceeded": "SUCCEEDED",
}
#: The events that open an attempt (its redrive count: 0 for ExecutionStarted).
ATTEMPT_STARTS = ("ExecutionStarted", "ExecutionRedriven")


def details_of(event: dict[str, Any]) -> dict[str, Any]:
    """An event's details: `stateEnteredEventDetails` / `stateExitedEventDetails` for every
    *StateEntered / *StateExited type, `<type>EventDetails` (lower camel case) for the
    others; {} if it has none."""
    kind = str(event.get("type", ""))
    if kind.endswith(("StateEntered", "StateExited")):
        key = "stateEnteredEventDetails" if kind.endswith("Entered") else "stateExitedEventDetails"
    else:
        key = f"{kind[:1].lower()}{kind[1:]}EventDetails"
    value = event.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Ending:
    """How one attempt of an execution ended."""

    status: str  # FAILED | TIMED_OUT | ABORTED | SUCCEEDED (from the closing event)
    state: str | None  # the state it ended in; None if no state had been entered
    error: str | None
    cause: str | None
    redrive_count: int | None  # None: the attempt's start was beyond the pages read


@dataclass
class _Attempt:
    status: str
    error: str | None
    cause: str | None
    state: str | None = None
    task_error: tuple[str | None, str | None] | None = None

    def ending(self, redrive_count: int | None) -> Ending:
        error, cause = self.error, self.cause
        if error is None and self.task_error is not None:
            error, cause = self.task_error
        return Ending(self.status, self.state, error, cause, redrive_count)


def find_ending(events: Iterable[dict[str, Any]], redrive_count: int | None) -> Ending | None:
    """The ending of attempt `redrive_count` (None: the newest attempt) from `events`, newest
    first. The state is the last one entered before the closing event: with no catch-all the
    execution fails in the state whose task failed; a timed-out or stopped execution ends in
    the state that was running. None if no attempt ended in the events given."""
    attempt: _Attempt | None = None
    for event in events:
        kind = str(event.get("type", ""))
        details = details_of(event)
        if kind in EXECUTION_ENDS:  # a (newer) attempt's end: start over from it
            attempt = _Attempt(EXECUTION_ENDS[kind], details.get("error"), details.get("cause"))
        elif attempt is None:
            continue  # events after the attempt's end (a newer attempt still running)
        elif kind in ATTEMPT_STARTS:
            count = int(details.get("redriveCount", 0)) if kind == "ExecutionRedriven" else 0
            if redrive_count is None or count == redrive_count:
                return attempt.ending(count)
            if count < redrive_count:
                return None  # attempt `redrive_count` is not in this history
            attempt = None  # a newer attempt than the one asked for
        elif attempt.state is None:
            if kind.endswith("StateEntered"):
                attempt.state = details.get("name")
            elif "error" in details:
                if kind == "EvaluationFailed" and details.get("state"):
                    attempt.state = details["state"]
                if attempt.task_error is None:  # the last failure (of its retries)
                    attempt.task_error = (details.get("error"), details.get("cause"))
    # the pages ended inside an attempt: the best answer there is (its count unknown)
    return attempt.ending(None) if attempt is not None else None
