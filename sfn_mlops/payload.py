"""Check a start-execution payload before starting anything: the same contract
(shared.models.PipelineInput over config/pipeline.yaml) the ValidateInput state applies,
so the user sees every bad field at once instead of a FAILED execution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared import resources

#: Filled by the ValidateInput Lambda from its environment when the payload omits them.
_FILLED_BY_PIPELINE = {
    "image_uri": "000000000000.dkr.ecr.us-east-1.amazonaws.com/placeholder:latest",
    "raw_data_uri": "s3://placeholder-bucket/data/",
}


#: Step Functions' limit on an execution's input (and on any state's data): 256 KiB of UTF-8.
#: A larger input fails StartExecution or the first state (States.DataLimitExceeded).
MAX_INPUT_BYTES = 256 * 1024


def size_problem(body: str) -> str | None:
    """Why the serialised payload is too large for StartExecution, or None."""
    size = len(body.encode("utf-8"))
    if size <= MAX_INPUT_BYTES:
        return None
    return (
        f"the payload is {size} bytes; Step Functions accepts at most {MAX_INPUT_BYTES} bytes "
        "(256 KiB) of execution input. Put large data in S3 and pass its URI (raw_data_uri), "
        "or drop what the run does not need"
    )


def problems(payload: Any, defaults: dict[str, Any] | None = None) -> list[str]:
    """Every problem with `payload` as 'field: problem; fix' lines; empty when it is valid.

    The same resolution ValidateInput runs (functions/validate), over config/pipeline.yaml."""
    from functions.validate.logic import deep_merge, resolve

    if not isinstance(payload, dict):
        return [f"(payload): must be a JSON object, got {type(payload).__name__}"]
    base = deep_merge(
        _FILLED_BY_PIPELINE, defaults if defaults is not None else resources.pipeline_defaults()
    )
    return resolve(base, payload)[1]


def load(path: Path) -> Any:
    from sfn_mlops.aws import UserError

    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from exc
