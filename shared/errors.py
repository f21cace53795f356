"""Named errors. A Lambda's unhandled exception surfaces in Step Functions as its class
name (the Lambda `errorType`), so these class names are the `ErrorEquals` names in the
state machine definition. Raise them `from` the AWS error that caused them.
"""

from __future__ import annotations


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


class EndpointUpdateFailedError(PipelineError):
    """CreateEndpoint/UpdateEndpoint did not reach InService with the new config.

    After a failed blue/green update the endpoint keeps serving the old config.
    """


class ArtifactError(PipelineError):
    """An artifact a step needs (evaluation report, sample rows) is missing or unreadable."""


class InferenceError(PipelineError):
    """The endpoint rejected or failed an inference request."""


class TransientServiceError(PipelineError):
    """An AWS call was throttled or failed transiently; the state machine retries it."""


#: Errors the state machine retries (besides AWS's recommended Lambda.* errors).
RETRYABLE_ERRORS: tuple[type[PipelineError], ...] = (TransientServiceError,)
