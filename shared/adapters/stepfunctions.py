"""Step Functions: start an execution, idempotently by name; an execution's status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.adapters._errors import ClientError, code_of, transient_errors

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


@dataclass(frozen=True)
class StartResult:
    execution_arn: str | None  # None when the name was already taken
    already_exists: bool


class StepFunctions:
    def __init__(self, client: SFNClient) -> None:
        self._client = client

    def start_execution(self, state_machine_arn: str, name: str, input_json: str) -> StartResult:
        """StartExecution. AWS answers the original ARN for the same name and input while it is
        RUNNING, and `ExecutionAlreadyExists` once it closed or for a different input: both
        mean this name has run, so neither starts anything new.
        """
        with transient_errors("StartExecution"):
            try:
                response = self._client.start_execution(
                    stateMachineArn=state_machine_arn, name=name, input=input_json
                )
            except ClientError as exc:
                if code_of(exc) == "ExecutionAlreadyExists":
                    return StartResult(None, already_exists=True)
                raise
        return StartResult(response["executionArn"], already_exists=False)

    def execution_status(self, execution_arn: str) -> str | None:
        """RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED | PENDING_REDRIVE; None if the
        execution does not exist."""
        with transient_errors("DescribeExecution"):
            try:
                response = self._client.describe_execution(executionArn=execution_arn)
            except ClientError as exc:
                if code_of(exc) == "ExecutionDoesNotExist":
                    return None
                raise
        return str(response["status"])
