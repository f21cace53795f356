"""EventBridge as the pipeline sees it on AWS.

moto gaps fixed here:
- ECR `PutImage` emits no event: we emit `ECR Image Action` (PUSH, SUCCESS) with AWS's shape.
- S3's EventBridge notification carries `eTag` and `reason: ObjectCreated`; AWS sends
  `etag` and `reason: PutObject` (CopyObject, CompleteMultipartUpload, ...). We replace
  moto's emitter, so only the AWS-shaped event is delivered (never a wrong-shaped duplicate).
- Rules cannot target Lambda functions in moto: we deliver to Lambda targets as AWS does,
  asynchronously, with the async-invoke retries (a function error is retried twice more).
- moto's SQS rule target reads its internal numeric `time` and fails on an AWS-shaped event:
  SQS targets get the event JSON as the message body, as AWS sends it.
- SageMaker emits no "SageMaker Model Package State Change": UpdateModelPackage emits it
  (source aws.sagemaker) for any change, metadata-only ones included, with the package's
  description as the detail (ModelPackageGroupName, ModelPackageArn, ModelApprovalStatus,
  ...), as SageMaker does, so rules must filter on the status. moto's UpdateModelPackage
  also clears what the call does not name (the approval status, the description, the
  metadata): only the given fields change here, as on AWS.
- Nor SNS topics: an SNS target publishes its (input-transformed) message to the topic, so
  the topic's subscribers (the local stack's SQS inbox) receive it. moto's transformer does
  not escape strings; ours inserts a whole-value placeholder as JSON and escapes one inside
  a string, as EventBridge does.
- Nor schedules: a rule with a ScheduleExpression and no EventPattern matches every event in
  moto; on AWS it receives only its own "Scheduled Event". Here it never matches a put or
  emitted event, and :func:`fire_schedule` delivers its Scheduled Event (source aws.events,
  resources [the rule's ARN], detail {}) to its targets, as one tick of the schedule.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: s3:ObjectCreated:<x> -> the `reason` AWS puts in an EventBridge "Object Created" event
S3_REASONS = {
    "Put": "PutObject",
    "Post": "POST Object",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
}
ASYNC_RETRIES = 2


def _iso(ts: dt.datetime | None = None) -> str:
    return (ts or dt.datetime.now(tz=dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    account: str,
    region: str,
    resources: list[str] | None = None,
) -> dict[str, Any]:
    """An EventBridge event exactly as a rule's target receives it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": _iso(),
        "region": region,
        "resources": resources or [],
        "detail": detail,
    }


def ecr_push_event(
    account: str, region: str, repository: str, digest: str, tag: str | None
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "PUSH",
    }
    if tag:
        detail["image-tag"] = tag
    return envelope("aws.ecr", "ECR Image Action", detail, account, region)


def s3_object_created_event(
    account: str,
    region: str,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    version_id: str | None,
    reason: str,
    sequencer: str,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"')}
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    obj["sequencer"] = sequencer
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account,
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    return envelope("aws.s3", "Object Created", detail, account, region, [f"arn:aws:s3:::{bucket}"])


MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"


def model_package_state_change_event(package: Any, account: str, region: str) -> dict[str, Any]:
    """The event SageMaker emits when a model package changes (its description as detail)."""
    described = package.gen_response_object()
    detail = {
        k: (v.isoformat() if isinstance(v, dt.datetime) else v)
        for k, v in described.items()
        if v is not None
    }
    detail["ModelPackageArn"] = package.arn
    detail.pop("Arn", None)
    return envelope(
        "aws.sagemaker", MODEL_PACKAGE_STATE_CHANGE, detail, account, region, [package.arn]
    )


@dataclass
class Delivery:
    rule: str
    target_arn: str
    event: dict[str, Any]
    attempts: int = 0
    error: str | None = None
    #: the function's response payload of the last attempt
    payload: Any = None
    done: threading.Event = field(default_factory=threading.Event)


def as_delivered(event: dict[str, Any]) -> dict[str, Any]:
    """The event as a target receives it (moto's internal fields and time format undone)."""
    event = copy.deepcopy(event)
    event.pop("ingestion-time", None)
    if isinstance(event.get("time"), int | float):
        event["time"] = _iso(dt.datetime.fromtimestamp(float(event["time"]), tz=dt.UTC))
    return event


def send_to_queue(queue_arn: str, event: dict[str, Any]) -> None:
    """An SQS rule target: the event JSON is the message body, as EventBridge sends it.
    (moto's own SQS target expects its internal numeric `time` and fails on AWS's.)"""
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, name = queue_arn.split(":", 5)
    sqs_backends[account][region].send_message(name, json.dumps(as_delivered(event)))


class EventRouter:
    """Delivers matched events to Lambda targets through `invoke(function_arn, event)`,
    which returns (payload, function_error)."""

    def __init__(self, invoke: Callable[[str, dict[str, Any]], tuple[Any, str | None]]) -> None:
        self._invoke = invoke
        self.deliveries: list[Delivery] = []
        #: (rule, topic ARN, message) of every SNS target delivery
        self.published: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._sequence = 0

    def next_sequencer(self) -> str:
        with self._lock:
            self._sequence += 1
            return f"{int(dt.datetime.now().timestamp() * 1e6):016X}{self._sequence:04X}"

    def deliver(self, rule_name: str, target_arn: str, event: dict[str, Any]) -> Delivery:
        event = as_delivered(event)
        delivery = Delivery(rule_name, target_arn, event)
        with self._lock:
            self.deliveries.append(delivery)
        threading.Thread(target=self._run, args=(delivery,), daemon=True).start()
        return delivery

    def _run(self, delivery: Delivery) -> None:
        try:
            for _ in range(1 + ASYNC_RETRIES):
                delivery.attempts += 1
                try:
                    payload, error = self._invoke(delivery.target_arn, delivery.event)
                except Exception as exc:  # the function is gone: EventBridge drops it
                    delivery.error = f"{type(exc).__name__}: {exc}"
                    return
                delivery.payload = payload
                if not error:
                    delivery.error = None
                    return
                delivery.error = json.dumps(payload)[:500]
        finally:
            delivery.done.set()

    def publish(self, rule_name: str, target: dict[str, Any], event: dict[str, Any]) -> str:
        """An SNS target: the (transformed) event published to the topic, synchronously."""
        from moto.sns.models import sns_backends

        transformer = target.get("InputTransformer")
        message = (
            input_transform(transformer, event)
            if transformer
            else target.get("Input") or json.dumps(event)
        )
        arn = str(target["Arn"])
        _, _, _, region, account, _ = arn.split(":", 5)
        sns_backends[account][region].publish(message=message, arn=arn)
        with self._lock:
            self.published.append((rule_name, arn, message))
        return message

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every delivery so far has finished (tests, the CLI)."""
        with self._lock:
            pending = list(self.deliveries)
        deadline = dt.datetime.now().timestamp() + timeout
        for d in pending:
            left = deadline - dt.datetime.now().timestamp()
            if left <= 0 or not d.done.wait(left):
                return False
        return True


_TEMPLATE_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|<([A-Za-z0-9_.-]+)>')
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")


def _path_value(event: dict[str, Any], path: str) -> Any:
    """A simple `$.a.b` JSONPath (what input paths use) into the event; None if absent."""
    value: Any = event
    for part in path.removeprefix("$").strip(".").split("."):
        if not part:
            continue
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def input_transform(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """A target's InputTransformer applied to `event`: the text the target receives."""
    values = {
        name: _path_value(event, path)
        for name, path in (transformer.get("InputPathsMap") or {}).items()
    }
    template = str(transformer.get("InputTemplate", ""))

    def as_text(value: Any) -> str:
        return value if isinstance(value, str) else "" if value is None else json.dumps(value)

    def inside(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        return json.dumps(as_text(values[name]))[1:-1]  # escaped for a JSON string

    def token(match: re.Match[str]) -> str:
        if match.group(1) is None:  # a quoted string: placeholders inside are text
            return _PLACEHOLDER.sub(inside, match.group(0))
        name = match.group(1)
        return json.dumps(values[name]) if name in values else match.group(0)

    return _TEMPLATE_TOKENS.sub(token, template)


def scheduled_event(rule_arn: str, account: str, region: str) -> dict[str, Any]:
    """A schedule rule's tick, as its targets receive it (EventBridge's "Scheduled Event")."""
    return envelope("aws.events", "Scheduled Event", {}, account, region, [rule_arn])


def is_schedule_only(rule: Any) -> bool:
    """A rule with a ScheduleExpression and no EventPattern: only its schedule fires it."""
    return bool(rule.scheduled_expression) and not rule.event_pattern.get_pattern()


def fire_schedule(router: EventRouter, rule_name: str, account: str, region: str) -> list[Delivery]:
    """One tick of the schedule rule `rule_name` (default bus): its Scheduled Event to each
    of its Lambda targets (asynchronously, as EventBridge invokes them). ValueError if the
    rule has no schedule or is disabled (EventBridge would not fire it)."""
    from moto.events.models import events_backends

    bus = events_backends[account][region].event_buses["default"]
    rule = bus.rules.get(rule_name)
    if rule is None or not rule.scheduled_expression:
        raise ValueError(f"rule {rule_name} is not a schedule rule of the default event bus")
    if rule.state != "ENABLED":
        raise ValueError(f"schedule rule {rule_name} is {rule.state}: it does not fire")
    event = scheduled_event(rule.arn, account, region)
    return [
        router.deliver(rule.name, target["Arn"], event)
        for target in rule.targets
        if ":lambda:" in target["Arn"]
    ]


def route_event(event: dict[str, Any], account: str, region: str) -> None:
    """Deliver an event (as given: same id, same shape) to every matching enabled rule."""
    from moto.events.models import events_backends

    backend = events_backends[account][region]
    for bus in list(backend.event_buses.values()):
        for rule in list(bus.rules.values()):
            if rule.state == "ENABLED":
                rule.send_to_targets(event, transform_input=False)


def install(patches: Any, router: EventRouter) -> None:
    """Patch moto (undone with `patches`): rules deliver to Lambda targets through `router`;
    ECR PutImage and S3 object creation emit AWS-shaped events (see the module docstring)."""
    import moto.s3.notifications as s3n
    from moto.ecr.models import ECRBackend
    from moto.events.models import Rule
    from moto.sagemaker.models import SageMakerModelBackend

    orig_send = Rule.send_to_targets
    orig_put_image = ECRBackend.put_image
    orig_s3_emit = s3n._send_event_bridge_message
    orig_update_package = SageMakerModelBackend.update_model_package

    def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
        if is_schedule_only(rule) or not rule.event_pattern.matches_event(event):
            return
        lambda_targets = [t for t in rule.targets if ":lambda:" in t["Arn"]]
        for target in lambda_targets:
            router.deliver(rule.name, target["Arn"], event)
        queue_targets = [t for t in rule.targets if ":sqs:" in t["Arn"]]
        for target in queue_targets:
            send_to_queue(target["Arn"], event)
        topic_targets = [t for t in rule.targets if ":sns:" in t["Arn"]]
        for target in topic_targets:
            router.publish(rule.name, target, event)
        handled = lambda_targets + queue_targets + topic_targets
        others = [t for t in rule.targets if t not in handled]
        if others:
            shadow = copy.copy(rule)
            shadow.targets = others
            orig_send(shadow, event, transform_input)

    def put_image(
        backend: Any, repository_name: str, image_manifest: str, image_tag: str, *a: Any, **kw: Any
    ) -> Any:
        image = orig_put_image(backend, repository_name, image_manifest, image_tag, *a, **kw)
        event = ecr_push_event(
            backend.account_id,
            backend.region_name,
            repository_name,
            image.get_image_digest(),
            image_tag,
        )
        route_event(event, backend.account_id, backend.region_name)
        return image

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        kind = event_name.split(":")
        if len(kind) == 3 and kind[1] == "ObjectCreated":
            event = s3_object_created_event(
                account_id,
                bucket.region_name,
                bucket.name,
                key.name,
                int(key.size),
                key.etag,
                str(key.version_id) if getattr(bucket, "is_versioned", False) else None,
                S3_REASONS.get(kind[2], kind[2]),
                router.next_sequencer(),
            )
            route_event(event, account_id, bucket.region_name)
        else:
            orig_s3_emit(account_id, bucket, event_name, key)

    def update_model_package(
        backend: Any,
        model_package_arn: str,
        model_approval_status: str | None = None,
        approval_description: str | None = None,
        customer_metadata_properties: dict[str, str] | None = None,
        **rest: Any,
    ) -> str:
        package = backend.model_packages.get(
            backend.model_package_name_mapping.get(model_package_arn, model_package_arn)
        )
        if package is not None:  # only what the call names changes (moto clears the rest)
            model_approval_status = model_approval_status or package.model_approval_status
            if approval_description is None:
                approval_description = package.approval_description
            merged = dict(package.customer_metadata_properties or {})
            merged.update(customer_metadata_properties or {})
            customer_metadata_properties = merged
        arn = orig_update_package(
            backend,
            model_package_arn=model_package_arn,
            model_approval_status=model_approval_status,
            approval_description=approval_description,
            customer_metadata_properties=customer_metadata_properties,
            **rest,
        )
        package = backend.model_packages[backend.model_package_name_mapping.get(arn, arn)]
        event = model_package_state_change_event(package, backend.account_id, backend.region_name)
        route_event(event, backend.account_id, backend.region_name)
        return str(arn)

    patches.set(SageMakerModelBackend, "update_model_package", update_model_package)
    patches.set(Rule, "send_to_targets", send_to_targets)
    patches.set(ECRBackend, "put_image", put_image)
    patches.set(s3n, "_send_event_bridge_message", send_event_bridge_message)
