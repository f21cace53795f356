"""EventBridge -> StartExecution, named from the event's content.

- ECR "ECR Image Action", PUSH + SUCCESS, the configured repository ->
  {image_uri: <registry>/<repo>@<digest>, tags: {image_tag, image_digest}}; one execution per
  image digest.
- S3 "Object Created" under DATA_PREFIX in the artifact bucket, one by one or as an SQS
  batch (the debounce: EventBridge -> SQS -> this function, batched for the window) ->
  {raw_data_uri: s3://<bucket>/<DATA_PREFIX>, tags: {data_version: <key>@<version or etag>
  +N more}} (characters a model package's metadata refuses replaced by `_`, cut to 256);
  one execution per batch of new object versions, or a follow-up after the data run that is
  RUNNING (shared/data_runs.py). The image is the default one (filled in by validate).
- CloudWatch "CloudWatch Alarm State Change" of the drift alarm into ALARM (the scheduled
  drift check found drifted features) -> one retraining on the data prefix, named from the
  alarm and the state change's timestamp; at most one per cooldown window: a conditional
  write of the window's owner (`drift#<alarm>`) is both the cooldown and the dedup (a
  redelivery of the owning event passes it and StartExecution is idempotent; any other
  ALARM within the window is ignored, naming the retraining that holds it). It then starts
  like a data run (a follow-up if one is RUNNING).
- SageMaker "Model Package State Change" of the configured group with ModelApprovalStatus
  Approved -> {model_package_arn}: a deployment run of that package (ValidateInput checks
  it, then the lock and the stages); one execution per package, so approving it again or
  changing its metadata starts nothing. Other statuses are ignored, and so is a package
  registered Approved by a RUNNING execution (that execution deploys it).
- Other repositories, prefixes, buckets, alarms or states, FAILURE or DELETE: ignored, with
  a log line.
- A malformed event: InvalidEventError naming the field.

EventBridge delivers at least once and invokes asynchronously (retrying errors), so
duplicates are normal: the same event gives the same name and input, and a taken name
(RUNNING with the same input answers the original ARN; closed answers
ExecutionAlreadyExists) starts nothing new.

Which delivery is the duplicate: StartExecution cannot tell (two concurrent deliveries both
get the ARN), so the trigger first claims the execution name in the coordination table (a
conditional put). The first claimant replies "started"; every later one replies "duplicate".
A duplicate still calls StartExecution (idempotent): if the claimant crashed between its claim
and its start, the redelivery starts the execution instead of losing the event.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.adapters.dynamodb import CoordinationTable
from shared.adapters.stepfunctions import StepFunctions
from shared.constraints import safe_metadata_value
from shared.data_runs import start_or_follow
from shared.errors import InvalidEventError, validation_problems
from shared.models import TriggerOutput
from shared.naming import (
    execution_name_for_alarm,
    execution_name_for_batch,
    execution_name_for_image,
    execution_name_for_object,
    execution_name_for_package,
)
from shared.observability import logger
from shared.settings import TriggerSettings

M = TypeVar("M", bound=BaseModel)
ECR = ("aws.ecr", "ECR Image Action")
#: A claim outlives EventBridge's retries (24 h) and S3's late duplicates.
CLAIM_TTL_SECONDS = 7 * 24 * 3600
S3_CREATED = ("aws.s3", "Object Created")
ALARM = ("aws.cloudwatch", "CloudWatch Alarm State Change")
REGISTRY = ("aws.sagemaker", "SageMaker Model Package State Change")


class _Lenient(BaseModel):
    # defer_build: each event type's validator is built when an event of it arrives (cold start)
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class Envelope(_Lenient):
    """The EventBridge envelope (the fields the trigger reads)."""

    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    detail_type: str = Field(alias="detail-type", min_length=1)
    account: str = Field(pattern=r"^[0-9]{12}$")
    region: str = Field(min_length=1)
    detail: dict[str, Any]


class EcrImageAction(_Lenient):
    result: str
    action_type: str = Field(alias="action-type")
    repository_name: str = Field(alias="repository-name", min_length=1)
    image_digest: str | None = Field(default=None, alias="image-digest")
    image_tag: str | None = Field(default=None, alias="image-tag")


class S3Bucket(_Lenient):
    name: str = Field(min_length=1)


class S3Object(_Lenient):
    key: str = Field(min_length=1)
    size: int | None = None
    etag: str | None = None  # AWS spells it `etag` (moto emits `eTag`; the local cloud fixes it)
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = None


class PackageStateChange(_Lenient):
    group: str = Field(alias="ModelPackageGroupName", min_length=1)
    arn: str = Field(
        alias="ModelPackageArn", pattern=r"^arn:aws[a-z-]*:sagemaker:.*:model-package/"
    )
    status: str | None = Field(default=None, alias="ModelApprovalStatus")
    metadata: dict[str, str] = Field(default_factory=dict, alias="CustomerMetadataProperties")


class S3ObjectCreated(_Lenient):
    bucket: S3Bucket
    object: S3Object
    reason: str | None = None


def _parse(model: type[M], data: Any, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, prefix=where)
        raise InvalidEventError("malformed event: " + "; ".join(problems)) from exc


def registry(account: str, region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def _ignored(reason: str, **keys: Any) -> TriggerOutput:
    logger.info("event ignored", extra={"reason": reason, **keys})
    return TriggerOutput(action="ignored", reason=reason)


def _from_ecr(
    event: Envelope, settings: TriggerSettings
) -> tuple[str, dict[str, Any]] | TriggerOutput:
    detail = _parse(EcrImageAction, event.detail, "detail")
    if detail.repository_name != settings.ecr_repository:
        return _ignored(
            f"repository {detail.repository_name} is not {settings.ecr_repository}",
            event_id=event.id,
        )
    if detail.action_type != "PUSH" or detail.result != "SUCCESS":
        return _ignored(f"ECR {detail.action_type} {detail.result}", event_id=event.id)
    if not detail.image_digest:
        raise InvalidEventError("malformed event: detail.image-digest: missing")
    try:
        name = execution_name_for_image(detail.repository_name, detail.image_digest)
    except ValueError as exc:
        raise InvalidEventError(f"malformed event: detail.image-digest: {exc}") from exc
    tags = {"image_digest": detail.image_digest}
    if detail.image_tag:
        tags["image_tag"] = detail.image_tag
    image = (
        f"{registry(event.account, event.region)}/{detail.repository_name}@{detail.image_digest}"
    )
    return name, {"image_uri": image, "tags": tags}


def _from_s3(
    event: Envelope, settings: TriggerSettings
) -> tuple[str, dict[str, Any]] | TriggerOutput:
    detail = _parse(S3ObjectCreated, event.detail, "detail")
    bucket, key = detail.bucket.name, detail.object.key
    if bucket != settings.artifact_bucket:
        return _ignored(f"bucket {bucket} is not {settings.artifact_bucket}", event_id=event.id)
    if not key.startswith(settings.data_prefix):
        return _ignored(f"key {key} is not under {settings.data_prefix}", event_id=event.id)
    if key.endswith("/"):
        return _ignored(f"key {key} is a folder marker", event_id=event.id)
    version = detail.object.version_id or detail.object.etag
    if not version:
        raise InvalidEventError("malformed event: detail.object.etag: missing (and no version-id)")
    name = execution_name_for_object(bucket, key, version)
    payload = {
        "raw_data_uri": f"s3://{bucket}/{settings.data_prefix}",
        # A derived value must satisfy what it becomes (a CustomerMetadataProperties value:
        # letters, digits, spaces, _.:/=+-@, 1-256 characters), whatever the key holds.
        "tags": {"data_version": safe_metadata_value(f"{key}@{version}")},
    }
    return name, payload


class AlarmState(_Lenient):
    value: str
    timestamp: str = Field(min_length=1)


class AlarmStateChange(_Lenient):
    alarm_name: str = Field(alias="alarmName", min_length=1)
    state: AlarmState


def cooldown_key(alarm_name: str) -> str:
    return f"drift#{alarm_name}"


def _from_alarm(
    event: Envelope, settings: TriggerSettings, stepfunctions: StepFunctions,
    table: CoordinationTable,
) -> TriggerOutput:  # fmt: skip
    detail = _parse(AlarmStateChange, event.detail, "detail")
    if detail.alarm_name != settings.drift_alarm_name:
        return _ignored(f"alarm {detail.alarm_name} is not {settings.drift_alarm_name}")
    if detail.state.value != "ALARM":
        return _ignored(f"alarm {detail.alarm_name} went to {detail.state.value}")
    name = execution_name_for_alarm(detail.alarm_name, detail.state.timestamp)
    logger.set_correlation_id(name)
    window = table.take_window(
        cooldown_key(detail.alarm_name), name, settings.drift_cooldown_seconds
    )
    if window is None:
        holder = table.owner_of(cooldown_key(detail.alarm_name))
        return _ignored(
            f"drift alarm in its cooldown: the retraining {holder} holds the "
            f"{settings.drift_cooldown_seconds // 3600} h window",
            event_id=event.id,
        )
    payload = {
        "raw_data_uri": f"s3://{settings.artifact_bucket}/{settings.data_prefix}",
        "tags": {"trigger": "drift", "drift_alarm": safe_metadata_value(detail.alarm_name)},
    }
    run = start_or_follow(
        settings.data_prefix, name, payload, settings.state_machine_arn, stepfunctions, table
    )
    if run.outcome == "duplicate" or window == "mine":
        return _duplicate(name, event.id, payload, run.execution_arn)
    if run.outcome == "follow-up":
        return TriggerOutput(
            action="follow-up",
            reason=f"drift alarm while the data run {run.holder} is RUNNING: it follows up",
            payload=payload,
        )
    reason = f"drift alarm {detail.alarm_name} at {detail.state.timestamp}"
    return _started(name, reason, run.execution_arn, payload, trigger="drift")


def _from_registry(
    event: Envelope, settings: TriggerSettings, stepfunctions: StepFunctions
) -> tuple[str, dict[str, Any]] | TriggerOutput:
    """Approved -> a deployment run of that package; any other state change -> nothing."""
    detail = _parse(PackageStateChange, event.detail, "detail")
    if detail.group != settings.model_package_group:
        return _ignored(f"group {detail.group} is not {settings.model_package_group}")
    if detail.status != "Approved":
        return _ignored(
            f"model package {detail.arn} is {detail.status}: only an approval deploys",
            event_id=event.id,
        )
    owner = detail.metadata.get("execution_arn")
    if owner and stepfunctions.execution_status(owner) == "RUNNING":
        return _ignored(
            f"model package {detail.arn} was registered Approved by the RUNNING execution "
            f"{owner}, which deploys it itself",
            event_id=event.id,
        )
    return execution_name_for_package(detail.arn), {"model_package_arn": detail.arn}


def claim_key(execution_name: str) -> str:
    return f"event#{execution_name}"


def handle_event(
    event: Any, settings: TriggerSettings, stepfunctions: StepFunctions, table: CoordinationTable
) -> TriggerOutput:
    """One EventBridge event, or an SQS batch of them (`Records`: the debounced S3 events)."""
    if isinstance(event, dict) and "Records" in event:
        return _handle_batch(event["Records"], settings, stepfunctions, table)
    envelope = _parse(Envelope, event, "event")
    kind = (envelope.source, envelope.detail_type)
    if kind == ECR:
        decided = _from_ecr(envelope, settings)
    elif kind == REGISTRY:
        decided = _from_registry(envelope, settings, stepfunctions)
    elif kind == S3_CREATED:
        decided = _from_s3(envelope, settings)
        if isinstance(decided, TriggerOutput):
            return decided
        return _start_data_run([(envelope, *decided)], settings, stepfunctions, table)
    elif kind == ALARM:
        return _from_alarm(envelope, settings, stepfunctions, table)
    else:
        raise InvalidEventError(
            f"unsupported event: source {envelope.source!r}, detail-type "
            f"{envelope.detail_type!r} (expected {ECR}, {S3_CREATED}, {REGISTRY} or {ALARM})"
        )
    if isinstance(decided, TriggerOutput):
        return decided
    name, payload = decided
    logger.set_correlation_id(name)
    # Same event -> same name and byte-identical input (AWS's idempotency compares both).
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    first = table.claim(claim_key(name), CLAIM_TTL_SECONDS, event_id=envelope.id)
    result = stepfunctions.start_execution(settings.state_machine_arn, name, body)
    if result.already_exists or not first:
        return _duplicate(name, envelope.id, payload, result.execution_arn)
    reason = f"{envelope.detail_type} from {envelope.source}"
    return _started(name, reason, result.execution_arn, payload)


def _started(
    name: str, reason: str, arn: str | None, payload: dict[str, Any], **log: Any
) -> TriggerOutput:
    logger.info("execution started", extra={"execution_name": name, "execution_arn": arn, **log})
    return TriggerOutput(
        action="started", reason=reason, execution_name=name, execution_arn=arn, payload=payload
    )


def _duplicate(
    name: str, event_id: str, payload: dict[str, Any] | None, arn: str | None
) -> TriggerOutput:
    logger.info("duplicate", extra={"execution_name": name, "event_id": event_id})
    return TriggerOutput(
        action="duplicate",
        reason="an execution of this name exists already",
        execution_name=name,
        execution_arn=arn,
        payload=payload,
    )


def _handle_batch(
    records: Any, settings: TriggerSettings, stepfunctions: StepFunctions, table: CoordinationTable
) -> TriggerOutput:
    """SQS records whose bodies are EventBridge S3 events (the S3 rule's queue target)."""
    if not isinstance(records, list) or not records:
        raise InvalidEventError("malformed event: Records: expected a non-empty list")
    objects: list[tuple[Envelope, str, dict[str, Any]]] = []
    ignored: list[str] = []
    for i, record in enumerate(records):
        body = record.get("body") if isinstance(record, dict) else None
        try:
            inner = json.loads(body) if isinstance(body, str) else None
        except json.JSONDecodeError as exc:
            raise InvalidEventError(f"malformed event: Records[{i}].body: {exc.msg}") from exc
        envelope = _parse(Envelope, inner, f"Records[{i}].body")
        if (envelope.source, envelope.detail_type) != S3_CREATED:
            raise InvalidEventError(
                f"unsupported event: Records[{i}]: {envelope.detail_type!r} from "
                f"{envelope.source!r} (the queue carries {S3_CREATED})"
            )
        decided = _from_s3(envelope, settings)
        if isinstance(decided, TriggerOutput):
            ignored.append(decided.reason)
        else:
            objects.append((envelope, *decided))
    if not objects:
        return TriggerOutput(action="ignored", reason="; ".join(ignored))
    return _start_data_run(objects, settings, stepfunctions, table)


def _start_data_run(
    objects: list[tuple[Envelope, str, dict[str, Any]]],
    settings: TriggerSettings,
    stepfunctions: StepFunctions,
    table: CoordinationTable,
) -> TriggerOutput:
    """Claim each object version (a redelivered one is a duplicate), then one data run for
    the new ones -- or a follow-up after the data run that is RUNNING."""
    new: dict[str, tuple[Envelope, dict[str, Any]]] = {}
    for envelope, name, payload in objects:
        if name in new:
            continue  # the same object twice in one batch
        if table.claim(claim_key(name), CLAIM_TTL_SECONDS, event_id=envelope.id):
            new[name] = (envelope, payload)
    if not new:
        envelope, name, payload = objects[0]
        return _duplicate(name, envelope.id, payload, None)
    names = sorted(new)
    versions = sorted(p["tags"]["data_version"] for _, p in new.values())
    payload = dict(next(iter(new.values()))[1])
    # "+N more" in characters the model package's metadata accepts (no parentheses)
    more = f" +{len(versions) - 1} more" if len(versions) > 1 else ""
    payload["tags"] = {"data_version": safe_metadata_value(f"{versions[0]}{more}")}
    name = names[0] if len(names) == 1 else execution_name_for_batch(names)
    if len(names) == 1:
        payload = new[name][1]
    logger.set_correlation_id(name)
    run = start_or_follow(
        settings.data_prefix, name, payload, settings.state_machine_arn, stepfunctions, table
    )
    if run.outcome == "duplicate":
        return _duplicate(name, new[names[0]][0].id, payload, run.execution_arn)
    if run.outcome == "follow-up":
        return TriggerOutput(
            action="follow-up",
            reason=(
                f"{len(names)} new object(s) while the data run {run.holder} is RUNNING: "
                "one follow-up run starts when it ends"
            ),
            execution_name=None,
            payload=payload,
        )
    reason = f"{len(names)} new object(s) under {settings.data_prefix}"
    return _started(name, reason, run.execution_arn, payload, objects=len(names))
