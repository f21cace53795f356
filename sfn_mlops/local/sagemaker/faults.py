"""The local SageMaker's own records of what was created, and fault injection for tests.

- `created`: the Create*/UpdateEndpoint calls SageMaker accepted, by operation, in order (the
  names created). A call SageMaker refused (ResourceInUse, an injected error) is not there,
  so the counts say how often something was really created.
- `inject_api_error(operation, code, message)`: the next call of an operation answers that
  error, as SageMaker would (AccessDenied before IAM was fixed, a ResourceLimitExceeded).
- `inject_job_failures(step, reasons)`: the next jobs of a pipeline step (their
  `sfn-mlops:step` tag) end Failed with these FailureReasons before their container runs,
  as SageMaker fails a job it cannot provision (`CapacityError: ...`) or on an internal
  error; the job is real otherwise (status, times, DescribeXJob).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

STEP_TAG = "sfn-mlops:step"


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.created: dict[str, list[str]] = defaultdict(list)
        self._api_errors: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._job_failures: dict[str, list[str]] = defaultdict(list)

    # --- records -------------------------------------------------------------------------
    def record(self, operation: str, name: str) -> None:
        with self._lock:
            self.created[operation].append(name)

    def count(self, operation: str) -> int:
        with self._lock:
            return len(self.created.get(operation, ()))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {op: len(names) for op, names in self.created.items()}

    # --- API errors ------------------------------------------------------------------------
    def inject_api_error(self, operation: str, code: str, message: str, times: int = 1) -> None:
        with self._lock:
            self._api_errors[operation].extend([(code, message)] * times)

    def take_api_error(self, operation: str) -> tuple[str, str] | None:
        with self._lock:
            pending = self._api_errors.get(operation)
            return pending.pop(0) if pending else None

    # --- job failures ----------------------------------------------------------------------
    def inject_job_failures(self, step: str, reasons: list[str]) -> None:
        with self._lock:
            self._job_failures[step].extend(reasons)

    def take_job_failure(self, params: dict[str, Any]) -> str | None:
        tags = {t.get("Key"): t.get("Value") for t in params.get("Tags") or []}
        step = tags.get(STEP_TAG)
        with self._lock:
            pending = self._job_failures.get(str(step))
            return pending.pop(0) if pending else None
