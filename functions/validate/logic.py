"""ValidateInput: the execution payload deep-merged over the pipeline defaults, validated as
PipelineInput, then checked against what can be checked cheaply before any job
(functions/validate/checks.py: hyperparameter ranges, instance types, tags, the time
budget; functions/validate/data.py: the data prefix and the first file's header). On bad
input, one InvalidInputError whose message lists every bad field as `path: problem` (with
the fix), so nothing else runs and the execution's cause says it all."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from functions.validate.checks import config_problems
from functions.validate.data import data_problems
from functions.validate.registry import PACKAGE_KEY, as_promotion, package_payload
from shared.adapters.s3 import S3
from shared.adapters.sagemaker import SageMaker
from shared.errors import InvalidInputError, validation_problems
from shared.models import PipelineInput, ValidateOutput, ValidateRequest
from shared.polling import polls_needed, schedule_seconds
from shared.schedule import settings_of, worst_case_seconds
from shared.settings import ValidateSettings


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`: nested mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def defaults(settings: ValidateSettings) -> dict[str, Any]:
    """config/pipeline.yaml (PIPELINE_DEFAULTS) plus the default image and raw-data prefix."""
    base: dict[str, Any] = {
        "image_uri": settings.default_image_uri,
        "raw_data_uri": f"s3://{settings.artifact_bucket}/{settings.data_prefix.lstrip('/')}",
    }
    return deep_merge(base, settings.pipeline_defaults)


def _longest(config: PipelineInput) -> tuple[int, str]:
    """How long one job may take (a Spot training job: its max wait, capacity waits and
    interruptions included), and how to name it in a problem."""
    longest = config.longest_job_seconds
    if longest == config.max_runtime_seconds:
        return longest, f"max_runtime_seconds={config.max_runtime_seconds}"
    return longest, f"Spot training's max wait ({longest}s)"


def schedule_problems(config: PipelineInput) -> list[str]:
    """The poll loop must be able to wait out a job that runs for max_runtime_seconds (a
    Spot training job: for its max wait)."""
    if config.poll_schedule == "predictive":
        return _predictive_problems(config)
    longest, what = _longest(config)
    covered = schedule_seconds(
        config.max_polls, config.poll_interval_seconds, config.max_poll_interval_seconds
    )
    if covered >= longest:
        return []
    needed = polls_needed(longest, config.poll_interval_seconds, config.max_poll_interval_seconds)
    return [
        f"max_polls: {config.max_polls} polls (interval {config.poll_interval_seconds}s "
        f"doubling to {config.max_poll_interval_seconds}s) cover only {covered}s of "
        f"{what}; set max_polls >= {needed}, or raise max_poll_interval_seconds"
    ]


def _predictive_problems(config: PipelineInput) -> list[str]:
    """However wrong a prediction, max_polls must still outlast the longest job."""
    settings = settings_of(config)
    longest, what = _longest(config)
    if worst_case_seconds(config.max_polls, settings) >= longest:
        return []
    needed = next(
        (n for n in range(config.max_polls, 10_001)
         if worst_case_seconds(n, settings) >= longest),
        10_000,
    )  # fmt: skip
    covered = worst_case_seconds(config.max_polls, settings)
    return [
        f"max_polls: {config.max_polls} polls of the predictive schedule cover only "
        f"{covered:.0f}s of {what} when the prediction "
        f"is wrong (end_poll_interval_seconds={config.end_poll_interval_seconds}, then half "
        f"the overrun up to max_poll_interval_seconds={config.max_poll_interval_seconds}); "
        f"set max_polls >= {needed}, or raise end_poll_interval_seconds"
    ]


#: The payload fields naming an endpoint: the stack's roles may use only the endpoints it
#: was deployed with (infra/permissions.py Scope.endpoint_arns), so another name would fail
#: with AccessDenied mid-run. staging_endpoint_name may also be null (no staging stage).
_ENDPOINT_FIELDS = ("endpoint_name", "staging_endpoint_name")


def endpoint_problems(defaults: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    """A payload's endpoint names and model package group must be the stack's own (its
    defaults'): its roles may act on those only."""
    own = [str(defaults[f]) for f in _ENDPOINT_FIELDS if defaults.get(f)]
    problems = []
    for field in _ENDPOINT_FIELDS:
        if field not in payload:
            continue
        name = payload[field]
        if name in own or (name is None and field == "staging_endpoint_name"):
            continue
        problems.append(
            f"{field}: {name!r} is not one of this stack's endpoints ({', '.join(own)}); "
            "deploy the stack with it in config/pipeline.yaml or omit it"
        )
    # the register role's grants name the stack's one group too (infra/permissions.py)
    group = defaults.get("model_package_group")
    if "model_package_group" in payload and payload["model_package_group"] != group:
        problems.append(
            f"model_package_group: {payload['model_package_group']!r} is not this stack's "
            f"model package group ({group}); deploy the stack with it in config/pipeline.yaml "
            "or omit it"
        )
    return problems


def resolve(
    defaults: dict[str, Any], payload: dict[str, Any]
) -> tuple[PipelineInput | None, list[str]]:
    """`payload` over `defaults` as a PipelineInput, or None and every problem found.

    The one resolution of the input contract: ValidateInput runs it, and so does the CLI's
    `sfn-mlops start` before it starts anything."""
    outside = endpoint_problems(defaults, payload)
    try:
        config = PipelineInput.model_validate(deep_merge(defaults, payload))
    except ValidationError as exc:
        return None, outside + validation_problems(exc)
    problems = outside + schedule_problems(config) + config_problems(config)
    return (None, problems) if problems else (config, [])


def validate(request: ValidateRequest, settings: ValidateSettings, s3: S3) -> ValidateOutput:
    config, problems = resolve(defaults(settings), request.payload)
    if config is not None:
        problems = data_problems(config, s3)
    if config is not None and not problems:
        return ValidateOutput(
            config=config,
            execution_name=request.execution_name,
            execution_arn=request.execution_arn,
        )
    raise InvalidInputError(
        f"{len(problems)} invalid field(s) in the execution input: " + "; ".join(problems)
    )


def validate_promotion(
    request: ValidateRequest, settings: ValidateSettings, sagemaker: SageMaker
) -> ValidateOutput:
    """A registry approval's run: the package checked (functions/validate/registry.py), the
    config resolved over the defaults with the package's image, data and problem."""
    payload = dict(request.payload)
    arn = payload.pop(PACKAGE_KEY)
    base = defaults(settings)
    group = str(deep_merge(base, payload).get("model_package_group", ""))
    overrides, promotion = package_payload(sagemaker, arn, group)
    config, problems = resolve(base, deep_merge(payload, overrides))
    if config is None:
        raise InvalidInputError(
            f"{len(problems)} invalid field(s) in the execution input: " + "; ".join(problems)
        )
    candidate, register, gate = as_promotion(promotion)
    return ValidateOutput(
        config=config,
        execution_name=request.execution_name,
        execution_arn=request.execution_arn,
        candidate=candidate,
        register=register,
        gate=gate,
    )
