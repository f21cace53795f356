"""Waiting for a Step Functions execution of the local cloud (bounded poll)."""

from __future__ import annotations

import time
from typing import Any


def wait_closed(sfn: Any, arn: str, timeout: float) -> dict[str, Any]:
    """DescribeExecution once the execution is no longer RUNNING (at most `timeout` s)."""
    deadline = time.monotonic() + timeout
    while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still RUNNING after {timeout:.0f}s"
        time.sleep(0.2)
    return desc  # type: ignore[no-any-return]


def wait_for(predicate: Any, timeout: float = 120.0, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy (returned), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)
