"""Step Functions: start an execution, idempotently by name; an execution's status; its
history, newest first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.adapters._errors import ClientError, code_of, transient_errors
from shared.errors import HistoryUnavailableError, TransientServiceError

#: GetExecutionHistory's largest page (botocore's model: maxResults 0..1000).
HISTORY_PAGE_SIZE = 1000
#: An execution's history holds at most 25,000 events (Step Functions quota): 25 full pages.
HISTORY_MAX_PAGES = 25

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

    def history_newest_first(
        self, execution_arn: str, max_pages: int = HISTORY_MAX_PAGES
    ) -> Iterator[dict[str, Any]]:
        """The execution's history events, newest first (reverseOrder), page by page as the
        caller reads on: at most `max_pages` pages. Any failure to read it is a
        HistoryUnavailableError naming the error code."""
        kwargs: dict[str, Any] = {
            "executionArn": execution_arn,
            "reverseOrder": True,
            "maxResults": HISTORY_PAGE_SIZE,
        }
        for _ in range(max_pages):
            try:
                with transient_errors("GetExecutionHistory"):
                    page = self._client.get_execution_history(**kwargs)
            except (ClientError, TransientServiceError) as exc:
                code = code_of(exc) if isinstance(exc, ClientError) else "throttled"
                raise HistoryUnavailableError(
                    f"GetExecutionHistory {execution_arn}: {code}: {exc}"
                ) from exc
            for event in page["events"]:
                yield dict(event)
            token = page.get("nextToken")
            if not token:
                return
            kwargs["nextToken"] = token
