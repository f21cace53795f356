"""Settings: each function's environment variables parsed once into a pydantic model.

This module is the only reader of `os.environ` for settings. A model declares exactly the
keys its function uses (each field's alias is the variable name); `load_settings(Model)` reads
them on the first call (cold start) and caches the result. A missing or invalid variable is a
ConfigurationError naming it. The keys are kept in line with shared/resources.py FUNCTIONS by
a unit test.

No `from __future__ import annotations`: see shared/models.py (cold start).
"""

import json
import os
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import ConfigurationError


class EnvSettings(BaseModel):
    """Base of the per-function settings: fields are aliased to environment variable names.

    `defer_build`: a settings model's validator is built on its first `load_settings` (as in
    shared/models.py), so a function builds only its own, not all of this module's.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


def _bucket() -> Any:
    return Field(alias="ARTIFACT_BUCKET", min_length=3, max_length=63)


def _table() -> Any:
    return Field(alias="COORDINATION_TABLE", min_length=3, max_length=255)


class TriggerSettings(EnvSettings):
    coordination_table: str = _table()
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", pattern=r"^arn:aws[a-z-]*:states:")
    ecr_repository: str = Field(alias="ECR_REPOSITORY", min_length=1)
    data_prefix: str = Field(alias="DATA_PREFIX", min_length=1)
    artifact_bucket: str = _bucket()
    #: the drift alarm whose ALARM state starts one retraining per cooldown window
    drift_alarm_name: str = Field(alias="DRIFT_ALARM_NAME", min_length=1)
    drift_cooldown_seconds: int = Field(alias="DRIFT_COOLDOWN_SECONDS", ge=60)

    #: registry approvals of this group's packages deploy them
    model_package_group: str = Field(alias="MODEL_PACKAGE_GROUP", min_length=1)


class MonitorSettings(EnvSettings):
    """The scheduled drift check (functions/monitor)."""

    artifact_bucket: str = _bucket()
    endpoint_name: str = Field(alias="MONITORED_ENDPOINT", min_length=1)
    monitor_role_arn: str = Field(alias="MONITOR_ROLE_ARN", pattern=r"^arn:aws[a-z-]*:iam::")
    window_hours: int = Field(alias="MONITOR_WINDOW_HOURS", ge=1, le=9)
    #: the drift job's thresholds (config/pipeline.yaml monitoring, as its environment)
    drift_environment: dict[str, str] = Field(alias="DRIFT_ENVIRONMENT")

    @field_validator("drift_environment", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class ValidateSettings(EnvSettings):
    pipeline_defaults: dict[str, Any] = Field(alias="PIPELINE_DEFAULTS")
    default_image_uri: str = Field(alias="DEFAULT_IMAGE_URI", min_length=1)
    artifact_bucket: str = _bucket()
    data_prefix: str = Field(alias="DATA_PREFIX", min_length=1)

    @field_validator("pipeline_defaults", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at {exc.pos})") from exc
        return value


class ArtifactSettings(EnvSettings):
    """Functions that read or write run artifacts (gate, register)."""

    artifact_bucket: str = _bucket()
    artifacts_prefix: str = Field(alias="ARTIFACTS_PREFIX", min_length=1)


class JobSettings(ArtifactSettings):
    """Functions that start SageMaker jobs or create models (preprocess, train, evaluate)."""

    sagemaker_role_arn: str = Field(alias="SAGEMAKER_ROLE_ARN", pattern=r"^arn:aws[a-z-]*:iam::")


class DeploySettings(JobSettings):
    endpoint_alarm_names: tuple[str, ...] = Field(alias="ENDPOINT_ALARM_NAMES")
    #: config/pipeline.yaml monitoring.capture_sampling_percentage (DataCaptureConfig)
    data_capture_percent: int = Field(alias="DATA_CAPTURE_PERCENT", ge=0, le=100)
    #: the staging endpoint's (its updates roll back on them); empty: none
    staging_alarm_names: tuple[str, ...] = Field(default=(), alias="STAGING_ALARM_NAMES")
    coordination_table: str = _table()  # the deployment lock (held, or taken back)

    @field_validator("endpoint_alarm_names", "staging_alarm_names", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = tuple(n.strip() for n in value.split(",") if n.strip())
            if len(names) > 10:
                raise ValueError("at most 10 alarms (SageMaker AutoRollbackConfiguration)")
            return names
        return value


class LockSettings(EnvSettings):
    """The deployment lock's functions (acquire, release, release on execution end)."""

    coordination_table: str = _table()


class ExecutionClosedSettings(LockSettings):
    """lock-events: also frees the data-run item and starts a follow-up data run."""

    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", pattern=r"^arn:aws[a-z-]*:states:")
    data_prefix: str = Field(alias="DATA_PREFIX", min_length=1)


class NotifySettings(EnvSettings):
    """notify: the topic it publishes failure notifications to."""

    notification_topic_arn: str = Field(
        alias="NOTIFICATION_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:"
    )


class InvokeSettings(EnvSettings):
    artifact_bucket: str = _bucket()


class NoSettings(EnvSettings):
    """A function that reads no environment variables of its own (poll)."""


S = TypeVar("S", bound=EnvSettings)


def env_keys(model: type[EnvSettings]) -> tuple[str, ...]:
    """The environment variable names a settings model reads."""
    return tuple(f.alias or name for name, f in model.model_fields.items())


def parse_settings(model: type[S], environ: dict[str, str] | os._Environ[str]) -> S:
    """Parse `model` from a mapping of environment variables (no caching)."""
    keys = env_keys(model)
    values = {k: environ[k] for k in keys if k in environ}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            key = str(err["loc"][0]) if err["loc"] else model.__name__
            if err["type"] == "missing":
                problems.append(f"{key}: not set")
            else:
                problems.append(f"{key}: {err['msg']}")
        raise ConfigurationError(
            f"invalid function environment ({model.__name__}): " + "; ".join(problems)
        ) from exc


_CACHE: dict[type[EnvSettings], EnvSettings] = {}


def load_settings(model: type[S]) -> S:
    """The function's settings from `os.environ`, parsed once (cold start) and cached."""
    cached = _CACHE.get(model)
    if cached is None:
        cached = _CACHE[model] = parse_settings(model, os.environ)
    assert isinstance(cached, model)
    return cached


def reset_settings() -> None:
    """Forget the cached settings (tests)."""
    _CACHE.clear()
