"""Handlers the Lambda-runtime tests deploy into the local cloud (real code, run in workers)."""

from __future__ import annotations

import os
import time
from typing import Any


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "pid": os.getpid(),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "env": {k: v for k, v in os.environ.items() if k.startswith("SFN_TEST_")},
    }


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError(f"bad event {sorted(event)}")


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event.get("seconds", 30)))
    return {"slept": True}
