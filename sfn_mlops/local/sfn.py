"""Step Functions fixes for the local cloud (moto's ASL interpreter backend).

- StartExecution without a name: AWS generates a UUID; moto names the execution "None"
  (so a second unnamed start fails with ExecutionAlreadyExists).
- RedriveExecution: moto has no implementation. The local cloud does not redrive; it
  answers with a clear error that says so and points at `sfn-mlops rerun` (a new
  execution with the same input), instead of moto's HTTP 500.
"""

from __future__ import annotations

import uuid
from typing import Any

from moto.core.exceptions import ServiceException

REDRIVE_UNSUPPORTED = (
    "RedriveExecution is not supported by the sfn-mlops local cloud. Start a new execution "
    "with the same input instead: sfn-mlops rerun --local EXECUTION (the console's "
    "'New execution'); on AWS, sfn-mlops redrive EXECUTION continues from the failed state."
)


class UnsupportedOperation(ServiceException):
    code = "UnsupportedOperation"


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
