"""One data run at a time, and exactly one follow-up for what arrived while it ran.

The S3 rule delivers "Object Created" events to an SQS queue; the trigger's event source
mapping batches them for the debounce window (config/pipeline.yaml `data_trigger`), so a
burst of uploads reaches the trigger as one batch and starts one execution (preprocessing
reads the whole data/ prefix, so it includes every object of the batch).

Across batches, the coordination table holds a *data-run* item (`datarun#<prefix>`, owner =
the RUNNING data execution), taken like the deployment lock:
- free, or its owner is no longer RUNNING -> this batch starts the run and owns the item;
- owner RUNNING -> the item is marked `followup` (conditional on that owner) and nothing
  starts now. However many batches arrive meanwhile, the mark is one flag: one follow-up.
- When the owner closes (any status), the execution-closed handler deletes the item
  (returning what it held, atomically) and, if it was marked, starts the follow-up
  (named from the closed execution, so a duplicate status event starts it once) as the new
  owner. A batch that finds the item gone in between simply takes it itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from shared.adapters.dynamodb import CoordinationTable
from shared.adapters.stepfunctions import StepFunctions
from shared.observability import logger

RUNNING = "RUNNING"


def data_run_key(prefix: str) -> str:
    return f"datarun#{prefix}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:...:stateMachine:<sm> -> arn:...:execution:<sm>:<name> (AWS's ARN format)."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def followup_name(closed_execution_arn: str) -> str:
    digest = hashlib.sha256(closed_execution_arn.encode()).hexdigest()[:32]
    return f"data-followup-{digest}"


@dataclass(frozen=True)
class DataRun:
    outcome: Literal["started", "duplicate", "follow-up"]
    execution_name: str
    execution_arn: str | None
    holder: str | None = None  # the RUNNING data execution a follow-up waits for


def start_or_follow(
    prefix: str,
    name: str,
    payload: dict[str, Any],
    state_machine_arn: str,
    sfn: StepFunctions,
    table: CoordinationTable,
) -> DataRun:
    """Start the data run `name`, or mark a follow-up after the one that is RUNNING."""
    key = data_run_key(prefix)
    me = execution_arn(state_machine_arn, name)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    for _ in range(5):  # each round changes the item's state; a few rounds settle any race
        if table.take(key, me):
            result = sfn.start_execution(state_machine_arn, name, body)
            if result.already_exists:
                return DataRun("duplicate", name, me)
            return DataRun("started", name, result.execution_arn or me)
        holder = table.owner_of(key)
        if holder is None:
            continue
        if sfn.execution_status(holder) == RUNNING:
            if table.mark(key, holder, "followup", body):
                logger.info("data run follows up", extra={"holder": holder, "batch": name})
                return DataRun("follow-up", name, None, holder=holder)
            continue
        table.reclaim(key, me, holder)
    raise RuntimeError(f"{key}: could not settle the data run after 5 rounds")


def on_closed(
    closed_arn: str,
    prefix: str,
    state_machine_arn: str,
    sfn: StepFunctions,
    table: CoordinationTable,
) -> str | None:
    """The data execution `closed_arn` closed: free its item; start its follow-up if marked.
    Returns the follow-up's execution name, if one was started."""
    held = table.release_returning(data_run_key(prefix), closed_arn)
    if held is None or "followup" not in held:
        return None
    name = followup_name(closed_arn)
    payload = json.loads(held["followup"])
    payload.setdefault("tags", {})["data_version"] = f"follow-up of {closed_arn.rsplit(':', 1)[-1]}"
    run = start_or_follow(prefix, name, payload, state_machine_arn, sfn, table)
    logger.info("follow-up data run", extra={"closed": closed_arn, "outcome": run.outcome})
    return name if run.outcome != "follow-up" else None
