"""Execution history events as Step Functions writes them, for the CLI's unit tests."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


class History:
    """Execution history events as Step Functions writes them, one state visit at a time."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = [{"type": "ExecutionStarted", "timestamp": T0}]
        self.t = 0.0

    def _add(self, kind: str, **details: Any) -> None:
        self.t += 1.0
        event = {"type": kind, "timestamp": T0 + dt.timedelta(seconds=self.t), **details}
        self.events.append(event)

    def visit(self, name: str, kind: str = "Task", error: str | None = None) -> History:
        data = json.dumps({"config": {"problem_type": "binary_classification"}})
        self._add(f"{kind}StateEntered", stateEnteredEventDetails={"name": name, "input": data})
        if kind == "Task":
            self._add("TaskScheduled")
            if error:
                self._add("TaskFailed", taskFailedEventDetails={"error": error, "cause": "boom"})
                return self
        self._add(f"{kind}StateExited", stateExitedEventDetails={"name": name, "output": data})
        return self

    def redrive(self) -> History:
        self._add("ExecutionRedriven")
        return self
