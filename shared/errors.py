"""Named errors. A Lambda's unhandled exception surfaces in Step Functions as its class
name (the Lambda `errorType`), so these class names are the `ErrorEquals` names in the
state machine definition. Raise them `from` the AWS error that caused them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ConfigurationError(PipelineError):
    """A Lambda's environment is missing or has an invalid setting (a deployment bug)."""


class InvalidInputError(PipelineError):
    """The execution payload failed validation; the message lists every bad field."""


class InvalidEventError(PipelineError):
    """An EventBridge event the trigger cannot read (malformed or of an unknown shape)."""


class JobFailedError(PipelineError):
    """A SageMaker job ended Failed; the message carries SageMaker's FailureReason."""


class JobStoppedError(PipelineError):
    """A SageMaker job ended Stopped (e.g. MaxRuntimeExceeded)."""


class PollLimitExceededError(PipelineError):
    """A job or endpoint was still in progress after the configured number of polls."""


class DeployLockTimeoutError(PollLimitExceededError):
    """Another RUNNING execution held the endpoint's deployment lock for all `max_polls` waits."""


class DeployLockLostError(PipelineError):
    """UpdateEndpoint ran without the endpoint's deployment lock (a redrive after the FAILED
    event released it) and could not take it back safely: another execution holds it, or the
    champion changed while this one was failed."""


class EndpointUpdateFailedError(PipelineError):
    """CreateEndpoint/UpdateEndpoint did not reach InService with the new config.

    After a failed blue/green update the endpoint keeps serving the old config.
    """


class EndpointFailedError(EndpointUpdateFailedError):
    """The endpoint is Failed: SageMaker only allows DeleteEndpoint on it (delete, then re-run)."""


class LoadCheckFailedError(PipelineError):
    """The staging endpoint's load check measured a p99 latency or an error rate over the
    thresholds (config load_check): the model is not promoted, production is unchanged."""


class PromotionRejected(PipelineError):  # noqa: N818 - SendTaskFailure's error name
    """A person rejected the promotion to production (`sfn-mlops reject EXECUTION`): the
    error SendTaskFailure reports at WaitForApproval."""


class ArtifactError(PipelineError):
    """An artifact a step needs (evaluation report, sample rows) is missing or unreadable."""


class InferenceError(PipelineError):
    """The endpoint rejected or failed an inference request."""


class TransientServiceError(PipelineError):
    """An AWS call was throttled or failed transiently; the state machine retries it."""


class ResourceLimitError(PipelineError):
    """SageMaker refused to start a job: ResourceLimitExceeded (an account quota, e.g. of
    instances in use). The state machine retries it with a long backoff; if the quota stays
    exhausted the execution fails at the Start state, and a Redrive after raising the quota
    (or after other jobs ended) starts the job."""


#: Errors the state machine retries (besides AWS's recommended Lambda.* errors).
RETRYABLE_ERRORS: tuple[type[PipelineError], ...] = (TransientServiceError,)
#: Retried too, but with a long backoff (quotas free up in minutes, not seconds).
CAPACITY_ERRORS: tuple[type[PipelineError], ...] = (ResourceLimitError,)


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(input)"


_FIXES = {
    "missing": "add it (or a default in config/pipeline.yaml)",
    "extra_forbidden": "remove it or fix its spelling",
}


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """Every error of a pydantic ValidationError as `path: problem (fix)`, in input order."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _location(loc)
        if prefix:
            path = f"{prefix}.{path}" if loc else prefix
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        fix = _FIXES.get(err["type"])
        got: Any = err.get("input")
        detail = ""
        if err["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
            shown = repr(got)
            detail = f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        problems.append(f"{path}: {message}{detail}" + (f"; {fix}" if fix else ""))
    return problems


class HistoryUnavailableError(PipelineError):
    """GetExecutionHistory failed (denied, throttled past the retries, no such execution):
    the failure notification is still sent, without the failed state's name."""
