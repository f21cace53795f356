"""The failure notification: an unsuccessful execution's status change event -> the state it
ended in (from its history), and one message on the notification topic.

AWS's "Step Functions Execution Status Change" event carries the error and cause but not
the state that failed, so an input transformer alone cannot name it: this reads the
execution's history newest first (shared/execution_history.py) for the attempt the event is
about (first run or a redrive). If the history cannot be read, the notification still goes
out, saying so: a denied or throttled read must not cost the operator the alert.

The message is JSON (machine-readable for the SQS and Lambda subscribers) pretty-printed
and opening with a one-line summary (readable in an e-mail).
"""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.sns import MESSAGE_MAX_BYTES, Topic
from shared.adapters.stepfunctions import StepFunctions
from shared.errors import HistoryUnavailableError
from shared.execution_history import Ending, find_ending
from shared.models import ExecutionStatusChange, NotifyOutput, StatusChangeEvent
from shared.resources import PROJECT

#: How the summary says where the execution ended, by status.
_WHERE = {
    "FAILED": "FAILED at {state}",
    "TIMED_OUT": "TIMED_OUT in {state} (the state running when the execution's timeout hit)",
    "ABORTED": "ABORTED (stopped) in {state}",
}
_NEXT_STEP = {
    "FAILED": "fix the cause, then Redrive",
    "TIMED_OUT": "find why {state} took so long (raise its limits if it was just slow), then "
    "Redrive",
    "ABORTED": "if it was stopped on purpose, nothing; otherwise Redrive",
}
_HOW = (
    " (the console's Redrive button, `sfn-mlops redrive {name}`, or `aws stepfunctions "
    "redrive-execution --execution-arn {arn}`): the run continues from {state}, nothing that "
    "succeeded runs again; a changed definition or a run closed over 14 days ago needs a new "
    "execution (`sfn-mlops rerun {name}`)"
)
SUMMARY_CAUSE_CHARS = 300
TRUNCATED = " ... [truncated to SNS's message size; the full cause is in the console]"


def console_url(execution_arn: str) -> str:
    """The execution's page in the Step Functions console (where the Redrive button is)."""
    region = execution_arn.split(":")[3]
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


def readable_cause(cause: str | None, limit: int = SUMMARY_CAUSE_CHARS) -> str:
    """A Lambda error's cause is JSON ({errorMessage, errorType, stackTrace}): its message;
    any other cause as it is; shortened to `limit` characters."""
    text = cause or ""
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("errorMessage"), str):
        text = data["errorMessage"]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def message_for(
    detail: ExecutionStatusChange, ending: Ending | None, unreadable: str | None
) -> dict[str, Any]:
    """The notification's fields (see the README's "Re-run a failed execution")."""
    state = ending.state if ending is not None else None
    error = detail.error or (ending.error if ending else None)
    cause = detail.cause or (ending.cause if ending else None)
    redrives = detail.redrive_count
    if redrives is None and ending is not None:
        redrives = ending.redrive_count
    where_state = state or (
        "an unknown state" if unreadable or ending is None else "no state (none had started)"
    )
    name, arn = detail.execution_name, detail.execution_arn
    where = _WHERE.get(detail.status, detail.status + " in {state}").format(state=where_state)
    summary = f"{PROJECT} execution {name} {where}"
    if error:
        summary += f": {error}"
    if cause:
        summary += f": {readable_cause(cause)}"
    next_step = _NEXT_STEP.get(detail.status, "Redrive").format(state=where_state)
    message: dict[str, Any] = {
        "summary": summary,
        "execution_name": name,
        "status": detail.status,
        "failed_state": state,
        "error": error,
        "cause": cause,
        "redrive_count": redrives,
        "execution_arn": arn,
        "console_url": console_url(arn),
        "next_step": next_step + _HOW.format(name=name, arn=arn, state=where_state),
    }
    if unreadable:
        message["failed_state_unknown_because"] = unreadable
    return message


def encode(message: dict[str, Any]) -> str:
    """The message as text within SNS's size limit: the cause (up to 32 KiB of any
    characters, each up to 4 bytes, or 6 when JSON escapes it) is shortened when the whole
    would not fit; nothing else is."""

    def dumps(fields: dict[str, Any]) -> str:
        return json.dumps(fields, indent=2, ensure_ascii=False)

    text = dumps(message)
    cause = str(message.get("cause") or "")
    for _ in range(8):  # proportional cuts converge in one or two passes
        size = len(text.encode())
        if size <= MESSAGE_MAX_BYTES or not cause:
            return text
        cause_bytes = len(json.dumps(cause, ensure_ascii=False).encode())
        budget = MESSAGE_MAX_BYTES - (size - cause_bytes) - len(TRUNCATED.encode()) - 64
        cause = cause[: max(0, int(len(cause) * budget / cause_bytes * 0.98))]
        text = dumps({**message, "cause": cause + TRUNCATED})
    return text


def notify(event: StatusChangeEvent, sfn: StepFunctions, topic: Topic) -> NotifyOutput:
    detail = event.detail
    ending: Ending | None = None
    unreadable: str | None = None
    try:
        ending = find_ending(sfn.history_newest_first(detail.execution_arn), detail.redrive_count)
    except HistoryUnavailableError as exc:
        unreadable = str(exc)
    message = message_for(detail, ending, unreadable)
    where = message["failed_state"] or "?"
    subject = f"{PROJECT} {detail.status} at {where}: {detail.execution_name}"
    message_id = topic.publish(subject, encode(message))
    return NotifyOutput(
        message_id=message_id,
        execution_name=detail.execution_name,
        status=detail.status,
        failed_state=message["failed_state"],
    )
