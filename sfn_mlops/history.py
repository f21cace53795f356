"""Reading a Step Functions execution history: which states ran, how long, how they ended."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

_EXECUTION_ENDS = frozenset({"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"})
_FAILURE_EVENTS = {
    "TaskFailed": "taskFailedEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "TaskSubmitFailed": "taskSubmitFailedEventDetails",
    "TaskStartFailed": "taskStartFailedEventDetails",
    "ExecutionFailed": "executionFailedEventDetails",
}


@dataclass
class StateRun:
    """One visit of a state (a poll loop visits Wait/Poll many times)."""

    name: str
    type: str
    entered: dt.datetime
    exited: dt.datetime | None = None
    input: Any = None
    output: Any = None
    attempts: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    redrive: int = 0  # the execution's redrive count when this visit ran (0: first run)
    visit: int = 1  # the how-manyth visit of this state in the execution (across redrives)
    closed: bool = False  # the execution ended (failed, timed out, aborted) in this state

    @property
    def status(self) -> str:
        if self.exited is None:
            if self.closed:
                return "failed"
            return "failed" if self.errors and self.type == "Fail" else "running"
        if self.type == "Fail":
            return "failed"
        if self.errors and len(self.errors) >= self.attempts:
            return "caught"  # every attempt failed; a Catch moved on
        return "succeeded"

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def seconds(self) -> float | None:
        if self.exited is None:
            return None
        return (self.exited - self.entered).total_seconds()


def _ts(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value))


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def state_runs(events: list[dict[str, Any]]) -> list[StateRun]:
    runs: list[StateRun] = []
    current: StateRun | None = None
    redrive = 0
    visits: dict[str, int] = {}
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            name = details.get("name", "?")
            visits[name] = visits.get(name, 0) + 1
            current = StateRun(
                name=name,
                type=kind.removesuffix("StateEntered"),
                entered=_ts(event["timestamp"]),
                input=_json(details.get("input")),
                redrive=redrive,
                visit=visits[name],
            )
            runs.append(current)
        elif kind in _EXECUTION_ENDS and current is not None and current.exited is None:
            current.closed = True
        elif kind == "ExecutionRedriven":
            redrive = int(event.get("executionRedrivenEventDetails", {}).get("redriveCount", 0))
            current = None
        elif kind.endswith("StateExited") and current is not None:
            details = event.get("stateExitedEventDetails", {})
            current.exited = _ts(event["timestamp"])
            current.output = _json(details.get("output"))
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled") and current is not None:
            current.attempts += 1
        elif kind in _FAILURE_EVENTS and current is not None and kind != "ExecutionFailed":
            details = event.get(_FAILURE_EVENTS[kind], {})
            current.errors.append((str(details.get("error", "")), str(details.get("cause", ""))))
    return runs


def failure(events: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """(state, error, cause) of the error that failed the execution: the last task error
    (the one a Catch routed to the failure path), else the execution's own error."""
    runs = state_runs(events)
    for run in reversed(runs):
        if run.errors and run.type != "Fail":
            error, cause = run.errors[-1]
            return run.name, error, _timeout_cause(run.name, error, cause)
    for event in reversed(events):
        if event["type"] == "ExecutionFailed":
            d = event.get("executionFailedEventDetails", {})
            state = runs[-1].name if runs else "?"
            error = str(d.get("error", ""))
            return state, error, _timeout_cause(state, error, str(d.get("cause", "")))
    return None


def _timeout_cause(state: str, error: str, cause: str) -> str:
    """Step Functions gives a state's States.Timeout no cause: say which timeout it was."""
    from sfn_mlops.promotion import APPROVAL_STATE

    if error != "States.Timeout" or cause.strip():
        return cause
    if state == APPROVAL_STATE:
        return (
            "no approve or reject within approval_timeout_seconds: production unchanged "
            "(a redrive asks again)"
        )
    return f"{state} ran past its TimeoutSeconds"


def note(run: StateRun) -> str:
    """What a row says besides status and duration: retries, a redrive, a repeated visit."""
    parts = []
    if run.retries:
        parts.append(f"retried {run.retries}x")
    if run.redrive:
        parts.append(f"redrive {run.redrive}")
    if run.visit > 1 and run.type == "Task" and not run.name.startswith("Poll"):
        parts.append(f"run {run.visit}")  # a restarted step: its job's next attempt
    return ", ".join(parts)


def pretty_cause(cause: str, limit: int | None = 600) -> str:
    """A Lambda error cause is JSON ({errorMessage, errorType, stackTrace}): keep the message
    (whole when `limit` is None)."""
    data = _json(cause)
    if isinstance(data, dict) and "errorMessage" in data:
        text = str(data["errorMessage"])
    else:
        text = str(cause)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def last_state_data(events: list[dict[str, Any]], output: Any = None) -> dict[str, Any]:
    """The execution's state data: its output when it has one, else the input of the last
    state it entered that carries the config (what had run until it failed)."""
    data = _json(output)
    if isinstance(data, dict) and data:
        return data
    for event in reversed(events):
        details = event.get("stateEnteredEventDetails")
        entered = _json(details.get("input")) if details else None
        if isinstance(entered, dict) and "config" in entered:
            return entered
    return {}
