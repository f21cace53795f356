"""The human side of promotion: `sfn-mlops approve|reject EXECUTION|PACKAGE`.

- An EXECUTION waiting at WaitForApproval (promotion: manual): its task token is the one in
  the SNS message; the CLI finds it in the execution's history (the TaskScheduled event of
  the `sns:publish.waitForTaskToken` state carries the resolved parameters, token included),
  so no extra store or grant is needed: states:GetExecutionHistory and
  states:SendTaskSuccess/Failure. Approve -> SendTaskSuccess({approved_by, reason});
  reject -> SendTaskFailure(error PromotionRejected, cause the reason).
- A model PACKAGE (its ARN): UpdateModelPackage ModelApprovalStatus Approved (or Rejected)
  with the reason as ApprovalDescription; the registry's state change event deploys an
  Approved package (the registry-approval rule), exactly as the console's approval does.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

from sfn_mlops.aws import Target, UserError, call

APPROVAL_STATE = "WaitForApproval"
REJECTED_ERROR = "PromotionRejected"  # shared.errors.PromotionRejected


def is_package(name: str) -> bool:
    return name.startswith("arn:") and ":model-package/" in name


def task_token(target: Target, execution_arn: str) -> str:
    """The token of the execution's pending WaitForApproval (UserError if there is none)."""
    sfn = target.client("stepfunctions")
    desc = call(sfn.describe_execution, executionArn=execution_arn)
    if desc["status"] != "RUNNING":
        raise UserError(f"execution {desc['name']} is {desc['status']}: nothing to approve")
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    events = [e for page in call(lambda: list(pages)) for e in page["events"]]
    entered = [
        e
        for e in events
        if e["type"] == "TaskStateEntered"
        and e["stateEnteredEventDetails"]["name"] == APPROVAL_STATE
    ]
    exited = [
        e
        for e in events
        if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == APPROVAL_STATE
    ]
    scheduled = [
        e
        for e in events
        if e["type"] == "TaskScheduled"
        and str(e["taskScheduledEventDetails"].get("resource", "")).endswith(".waitForTaskToken")
    ]
    if not entered or len(exited) >= len(entered) or not scheduled:
        raise UserError(
            f"execution {desc['name']} is not waiting at {APPROVAL_STATE} (promotion: manual "
            "waits there after the staging checks); see `sfn-mlops describe`"
        )
    parameters = json.loads(scheduled[-1]["taskScheduledEventDetails"]["parameters"])
    message = parameters.get("Message")
    message = json.loads(message) if isinstance(message, str) else message
    token = (message or {}).get("task_token")
    if not token:
        raise UserError(f"execution {desc['name']}: no task token in {APPROVAL_STATE}'s message")
    return str(token)


def decide_execution(target: Target, execution: str, approve: bool, reason: str) -> str:
    """Approve or reject an execution's promotion; returns its ARN."""
    arn = target.execution_arn(execution)
    token = task_token(target, arn)
    sfn = target.client("stepfunctions")
    if approve:
        output = {"approved_by": _who(), "reason": reason}
        call(sfn.send_task_success, taskToken=token, output=json.dumps(output))
    else:
        call(
            sfn.send_task_failure,
            taskToken=token,
            error=REJECTED_ERROR,
            cause=f"rejected by {_who()}: {reason or 'no reason given'}"[:32768],
        )
    return arn


def decide_package(target: Target, package_arn: str, approve: bool, reason: str) -> dict[str, Any]:
    """UpdateModelPackage: Approved (the registry rule deploys it) or Rejected."""
    sm = target.client("sagemaker")
    status = "Approved" if approve else "Rejected"
    description = reason or f"{status.lower()} with sfn-mlops by {_who()}"
    call(
        sm.update_model_package,
        ModelPackageArn=package_arn,
        ModelApprovalStatus=status,
        ApprovalDescription=description[:1000],
    )
    return {"model_package_arn": package_arn, "approval_status": status}


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
