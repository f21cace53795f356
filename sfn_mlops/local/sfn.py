"""Step Functions fixes for the local cloud (moto's ASL interpreter backend).

- StartExecution without a name: AWS generates a UUID; moto names the execution "None"
  (so a second unnamed start fails with ExecutionAlreadyExists).
- Fast waits (optional, on by default in the local cloud): a Wait state ends as soon as a
  SageMaker job or endpoint operation of the local cloud ends, or at once when none is under
  way, instead of sleeping its full seconds. The definition, the history and the
  transitions are unchanged; only idle wall time is skipped, like a clock that jumps to the
  next event. Local jobs take seconds where SageMaker's take minutes, so the poll schedule
  (tuned for AWS) would otherwise dominate a local run.
- RedriveExecution: moto has no implementation. The local cloud does not redrive; it
  answers with a clear error that says so and points at `sfn-mlops rerun` (a new
  execution with the same input), instead of moto's HTTP 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from moto.core.exceptions import ServiceException

REDRIVE_UNSUPPORTED = (
    "RedriveExecution is not supported by the sfn-mlops local cloud. Start a new execution "
    "with the same input instead: sfn-mlops rerun --local EXECUTION (the console's "
    "'New execution'); on AWS, sfn-mlops redrive EXECUTION continues from the failed state."
)


class UnsupportedOperation(ServiceException):
    code = "UnsupportedOperation"


def install_fast_waits(
    patches: Any, wait_for_change: Callable[[float, Callable[[], bool]], None]
) -> None:
    """Wait states return at the next local SageMaker change (see the module docstring)."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        if wait_seconds > 0:
            wait_for_change(float(wait_seconds), env.is_running)

    patches.set(WaitFunction, "_wait_interval", _wait_interval)


def install(patches: Any) -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    original_start = StepFunctionsParserBackend.start_execution

    def start_execution(
        backend: Any,
        state_machine_arn: str,
        name: Any = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        return original_start(
            backend, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header
        )

    def redrive_execution(resp: Any) -> Any:
        resp.stepfunction_backend.describe_execution(resp._get_param("executionArn"))
        raise UnsupportedOperation(REDRIVE_UNSUPPORTED)

    patches.set(StepFunctionsParserBackend, "start_execution", start_execution)
    patches.set(StepFunctionResponse, "redrive_execution", redrive_execution)
