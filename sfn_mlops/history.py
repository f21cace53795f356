"""Reading a Step Functions execution history: which states ran, how long, how they ended."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

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

    @property
    def status(self) -> str:
        if self.exited is None:
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
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            current = StateRun(
                name=details.get("name", "?"),
                type=kind.removesuffix("StateEntered"),
                entered=_ts(event["timestamp"]),
                input=_json(details.get("input")),
            )
            runs.append(current)
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
            return run.name, error, cause
    for event in reversed(events):
        if event["type"] == "ExecutionFailed":
            d = event.get("executionFailedEventDetails", {})
            state = runs[-1].name if runs else "?"
            return state, str(d.get("error", "")), str(d.get("cause", ""))
    return None


def pretty_cause(cause: str, limit: int = 600) -> str:
    """A Lambda error cause is JSON ({errorMessage, errorType, stackTrace}): keep the message."""
    data = _json(cause)
    if isinstance(data, dict) and "errorMessage" in data:
        text = str(data["errorMessage"])
    else:
        text = str(cause)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
