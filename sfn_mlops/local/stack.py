"""Deploy the stack into the local cloud, from the same constants the CDK app uses
(shared/resources.py): bucket, ECR repository, topic, roles, one function per FunctionSpec
with resources.function_environment, the state machine from the rendered ASL with its
placeholders substituted, the coordination table, and the EventBridge rules (the trigger,
the data-events queue it reads in debounced batches, the execution-closed rule).

Local-only overrides of the pipeline defaults are explicit and few: LOCAL_OVERRIDES.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.permissions import PERMISSIONS, drift_job_grants, policy_document
from sfn_mlops.local import iam
from sfn_mlops.local.cloud import LocalCloud
from sfn_mlops.local.lambda_runtime import FunctionConfig
from sfn_mlops.local.queues import EventSource
from shared import resources

#: Faster polls and fewer boosting rounds than the cloud defaults, for a one-minute run.
LOCAL_OVERRIDES: dict[str, Any] = {
    "poll_interval_seconds": 1,
    "max_poll_interval_seconds": 2,
    "end_poll_interval_seconds": 1,  # the predictive schedule's waits stay within the 2 s
    "max_polls": 200,  # with 2 s polls: covers max_runtime_seconds (the validator checks)
    "max_runtime_seconds": 300,
    "hyperparameters": {"num_round": 30},
    # Blue/green waits: SageMaker's minutes (config/pipeline.yaml) are seconds here; the
    # local endpoint really waits them, watching the alarms (sfn_mlops/local/sagemaker/
    # endpoints.py), so a canary's baking period is real but short.
    "deploy_strategy": {"wait_interval_seconds": 2, "termination_wait_seconds": 1},
    # The load check's latency locally is the local cloud's (a Lambda worker -> moto's HTTP
    # server in this process -> the model server), on a CPU shared with the jobs: on 2 busy
    # cores one call took 2 s (CI). The p99 bound stays a real check, set for that; the
    # error-rate bound is config/pipeline.yaml's (any error fails the check).
    "load_check": {"requests": 20, "max_p99_latency_ms": 15000},
}


#: Local only: the SQS queue subscribed to the notification topic (read it back).
NOTIFICATION_INBOX = f"{resources.PROJECT}-notifications-inbox"


@dataclass
class Stack:
    region: str
    account: str
    bucket: str
    repository: str
    repository_uri: str
    topic_arn: str
    state_machine_arn: str
    function_arns: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    #: SQS queue subscribed to the topic: the local cloud's notifications, to read back
    notification_queue_url: str = ""

    @property
    def data_uri(self) -> str:
        return f"s3://{self.bucket}/{resources.DATA_PREFIX}"


def local_defaults(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """config/pipeline.yaml with LOCAL_OVERRIDES (and `overrides`) merged over it."""
    defaults = resources.pipeline_defaults()
    for layer in (LOCAL_OVERRIDES, overrides or {}):
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(defaults.get(key), dict):
                defaults[key] = {**defaults[key], **value}
            else:
                defaults[key] = value
    return defaults


def render_definition(
    function_arns: dict[str, str],
    topic_arn: str,
    path: Path = resources.ASL_PATH,
    text: str | None = None,
) -> str:
    """The rendered ASL (or `text`) with every ${...} placeholder substituted (an unknown
    one is an error)."""
    values = {
        spec.asl_placeholder: function_arns[spec.key]
        for spec in resources.FUNCTIONS
        if spec.asl_placeholder and spec.key in function_arns
    }
    values[resources.TOPIC_PLACEHOLDER] = topic_arn
    text = path.read_text() if text is None else text
    missing = sorted({m for m in re.findall(r"\$\{(\w+)\}", text) if m not in values})
    if missing:
        raise KeyError(f"{path}: no value for placeholders {missing}")
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)


def _code_zip() -> bytes:
    """create_function needs a package; the handler that runs is the checkout's code."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README.txt", "The local cloud runs the handler from this checkout.\n")
    return buf.getvalue()


def _role(client: Callable[[str], Any], name: str, service: str, policy: str | None = None) -> str:
    iam = client("iam")
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        arn = str(
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(doc))["Role"]["Arn"]
        )
    except iam.exceptions.EntityAlreadyExistsException:
        arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
    if policy is not None and json.loads(policy)["Statement"]:  # (none: a role with no policy)
        iam.put_role_policy(RoleName=name, PolicyName="grants", PolicyDocument=policy)
    return arn


@dataclass
class Pipeline:
    """What deploy_pipeline created: function ARNs by FunctionSpec.key, topic, state machine."""

    function_arns: dict[str, str]
    topic_arn: str
    state_machine_arn: str
    role_arns: dict[str, str]
    #: FunctionSpec.key -> the function's own role (when deployed with `policies`)
    function_role_arns: dict[str, str] = field(default_factory=dict)


def deploy_pipeline(
    client: Callable[[str], Any],
    *,
    environment: Callable[[resources.FunctionSpec], dict[str, str]] | None = None,
    on_function: Callable[[resources.FunctionSpec, str, dict[str, str]], None] | None = None,
    definition: str | None = None,
    only_definition_functions: bool = False,
    policies: Mapping[str, str] | None = None,
) -> Pipeline:
    """The one "deploy the pipeline into moto" (the local cloud's stack, the state machine
    tests, the benchmarks): roles, one function per FunctionSpec (runtime, handler, timeout,
    memory from shared/resources.py), the failure topic, and the state machine named
    STATE_MACHINE_NAME from the rendered ASL (`definition`: another ASL text with the same
    placeholders) with every placeholder substituted.

    `client(service)` makes a boto3 client; `environment(spec)` gives a function's variables;
    `on_function(spec, arn, env)` is called for each function created (to register its
    handler); `only_definition_functions` skips functions the definition does not call;
    `policies` (FunctionSpec.key -> policy JSON, sfn_mlops/local/iam.py): each function gets
    its own role with that policy, as the CDK app gives it, instead of the shared one.
    """
    roles = {
        kind: _role(client, f"{resources.PROJECT}-{kind}", f"{kind}.amazonaws.com")
        for kind in ("lambda", "sagemaker", "states")
    }
    lam = client("lambda")
    arns: dict[str, str] = {}
    zipped = _code_zip()
    function_roles: dict[str, str] = {}
    for spec in resources.FUNCTIONS:
        if only_definition_functions and not spec.asl_placeholder:
            continue
        env = environment(spec) if environment else {}
        role = roles["lambda"]
        if policies is not None:
            role = _role(client, iam.role_name(spec), "lambda.amazonaws.com", policies[spec.key])
            function_roles[spec.key] = role
        fn = lam.create_function(
            FunctionName=spec.function_name,
            Runtime=resources.LAMBDA_RUNTIME,
            Role=role,
            Handler=spec.handler,
            Code={"ZipFile": zipped},
            Description=spec.description[:256],
            Timeout=spec.timeout_seconds,
            MemorySize=spec.memory_mb,
            Environment={"Variables": env},
        )
        arns[spec.key] = fn["FunctionArn"]
        if on_function is not None:
            on_function(spec, fn["FunctionArn"], env)
    topic_arn = client("sns").create_topic(Name=resources.FAILURE_TOPIC)["TopicArn"]
    created = client("stepfunctions").create_state_machine(
        name=resources.STATE_MACHINE_NAME,
        definition=render_definition(arns, topic_arn, text=definition),
        roleArn=roles["states"],
        type="STANDARD",
    )
    return Pipeline(arns, topic_arn, str(created["stateMachineArn"]), roles, function_roles)


def deploy(
    cloud: LocalCloud,
    overrides: dict[str, Any] | None = None,
    triggers: bool = True,
    permissions: iam.Permissions | None = PERMISSIONS,
) -> Stack:
    """Create every resource. With triggers=False the S3/ECR rules are left for
    enable_triggers() (so seed data can be uploaded without starting an execution).
    `permissions`: the functions' grants (infra/permissions.py), enforced on each function's
    worker (sfn_mlops/local/iam.py); None runs every function unchecked."""
    region, account = cloud.region, cloud.account
    bucket = resources.bucket_name(account, region)
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    ecr = cloud.client("ecr")
    repo = ecr.create_repository(repositoryName=resources.ECR_REPOSITORY)["repository"]
    cloudwatch = cloud.client("cloudwatch")
    defaults = local_defaults(overrides)
    stage_alarms = (
        (resources.ENDPOINT_ALARM_NAMES, defaults["endpoint_name"]),
        (resources.STAGING_ALARM_NAMES, defaults["staging_endpoint_name"]),
    )
    # as infra/constructs/sagemaker.py builds them: any 5xx in 2 one-minute periods; p99
    # ModelLatency over 1 s (microseconds) in 3; missing data is not breaching
    statistics = (
        {"Statistic": "Sum", "Threshold": 1, "EvaluationPeriods": 2, "DatapointsToAlarm": 2,
         "ComparisonOperator": "GreaterThanOrEqualToThreshold"},
        {"ExtendedStatistic": "p99", "Threshold": 1_000_000, "EvaluationPeriods": 3,
         "DatapointsToAlarm": 3, "ComparisonOperator": "GreaterThanThreshold"},
    )  # fmt: skip
    for names, endpoint in stage_alarms:
        for alarm, metric, statistic in zip(
            names, resources.ENDPOINT_ALARM_METRICS, statistics, strict=True
        ):
            cloudwatch.put_metric_alarm(
                AlarmName=alarm,
                Namespace="AWS/SageMaker",
                MetricName=metric,
                Dimensions=[
                    {"Name": "EndpointName", "Value": str(endpoint)},
                    {"Name": "VariantName", "Value": resources.ENDPOINT_VARIANT_NAME},
                ],
                Period=60,
                TreatMissingData="notBreaching",
                **statistic,  # type: ignore[arg-type]
            )
    state_machine_arn = (
        f"arn:aws:states:{region}:{account}:stateMachine:{resources.STATE_MACHINE_NAME}"
    )
    # the deployment locks, event claims and the data-run item (DynamoDB is in moto)
    cloud.client("dynamodb").create_table(**resources.coordination_table_request())
    values = {
        "COORDINATION_TABLE": resources.COORDINATION_TABLE,
        "ARTIFACT_BUCKET": bucket,
        "ARTIFACTS_PREFIX": resources.ARTIFACTS_PREFIX,
        "SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{account}:role/{resources.PROJECT}-sagemaker",
        "STATE_MACHINE_ARN": state_machine_arn,
        "ECR_REPOSITORY": resources.ECR_REPOSITORY,
        "MODEL_PACKAGE_GROUP": str(defaults["model_package_group"]),
        "DATA_PREFIX": resources.DATA_PREFIX,
        "PIPELINE_DEFAULTS": json.dumps(defaults, separators=(",", ":"), sort_keys=True),
        "DEFAULT_IMAGE_URI": f"{repo['repositoryUri']}:latest",
        "ENDPOINT_ALARM_NAMES": ",".join(resources.ENDPOINT_ALARM_NAMES),
        "DATA_CAPTURE_PERCENT": str(resources.monitoring().capture_sampling_percentage),
        **resources.monitoring().function_values(
            str(defaults["endpoint_name"]),
            f"arn:aws:iam::{account}:role/{resources.DRIFT_JOB_ROLE}",
        ),
        "STAGING_ALARM_NAMES": ",".join(resources.STAGING_ALARM_NAMES),
        # deploy_pipeline creates the topic after the functions: its ARN, from its name
        "NOTIFICATION_TOPIC_ARN": f"arn:aws:sns:{region}:{account}:{resources.FAILURE_TOPIC}",
    }

    policies = None
    if permissions is not None:
        scope = iam.LocalScope(
            region=region,
            account=account,
            bucket=bucket,
            state_machine_arn=state_machine_arn,
            sagemaker_role_arn=values["SAGEMAKER_ROLE_ARN"],
            model_package_group=str(defaults["model_package_group"]),
            alarm_names=(*resources.ENDPOINT_ALARM_NAMES, *resources.STAGING_ALARM_NAMES),
            endpoint_names=tuple(
                str(name)
                for name in (defaults["endpoint_name"], defaults["staging_endpoint_name"])
                if name
            ),
        )
        policies = iam.role_policies(scope, permissions)

    def register(spec: resources.FunctionSpec, arn: str, env: dict[str, str]) -> None:
        credentials, clients = None, ()
        if policies is not None:  # the worker runs as the function's role
            role = f"arn:aws:iam::{account}:role/{iam.role_name(spec)}"
            credentials = cloud.iam.credentials(cloud.client("sts"), role, spec.function_name)
            clients = iam.client_services(policies[spec.key])
        cloud.register_function(
            FunctionConfig(
                name=spec.function_name,
                arn=arn,
                handler=spec.handler,
                environment=env,
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
                credentials=credentials,
                warm_clients=clients,
            )
        )

    pipeline = deploy_pipeline(
        cloud.client,
        environment=lambda spec: resources.function_environment(spec, values),
        on_function=register,
        policies=policies,
    )
    assert pipeline.state_machine_arn == state_machine_arn, pipeline.state_machine_arn
    assert pipeline.role_arns["sagemaker"] == values["SAGEMAKER_ROLE_ARN"], pipeline.role_arns
    assert pipeline.topic_arn == values["NOTIFICATION_TOPIC_ARN"], pipeline.topic_arn
    stack = Stack(
        region=region,
        account=account,
        bucket=bucket,
        repository=resources.ECR_REPOSITORY,
        repository_uri=repo["repositoryUri"],
        topic_arn=pipeline.topic_arn,
        state_machine_arn=state_machine_arn,
        function_arns=pipeline.function_arns,
        defaults=defaults,
    )
    stack.notification_queue_url = notify_unsuccessful_executions(cloud, stack)
    drift_scope = iam.LocalScope(
        region=region, account=account, bucket=bucket, state_machine_arn=state_machine_arn,
        sagemaker_role_arn=values["SAGEMAKER_ROLE_ARN"],
        model_package_group=str(defaults["model_package_group"]), alarm_names=(),
    )  # fmt: skip
    monitoring(cloud, stack, drift_scope)
    if triggers:
        enable_triggers(cloud, stack)
    return stack


def monitoring(cloud: LocalCloud, stack: Stack, scope: iam.LocalScope) -> None:
    """Model monitoring, as the CDK app builds it (infra/constructs/drift.py): the drift job's
    role with its grants, the schedule rule -> the monitor function, the drift alarm, and its
    ALARM state change -> the trigger. The local cloud keeps no clock for schedules: a tick
    is `cloud.fire_schedule(resources.DRIFT_SCHEDULE_RULE)` (`sfn-mlops local run --scenario
    drift` and the tests fire it)."""
    role = _role(cloud.client, resources.DRIFT_JOB_ROLE, "sagemaker.amazonaws.com",
                 json.dumps(policy_document(drift_job_grants(scope))))  # fmt: skip
    assert role == scope.drift_role_arn, role
    config = resources.monitoring()
    endpoint = str(stack.defaults["endpoint_name"])
    cloud.client("cloudwatch").put_metric_alarm(**config.alarm(endpoint))
    alarm_arn = (
        f"arn:aws:cloudwatch:{stack.region}:{stack.account}:alarm:{resources.DRIFT_ALARM_NAME}"
    )
    events = cloud.client("events")
    schedule = config.schedule_expression
    monitor = stack.function_arns["monitor"]
    _route(events, resources.DRIFT_SCHEDULE_RULE, None, "monitor", monitor, schedule=schedule)
    _route(
        events,
        resources.DRIFT_ALARM_RULE,
        resources.drift_alarm_event_pattern(alarm_arn),
        "trigger",
        stack.function_arns["trigger"],
    )


def _route(
    events: Any,
    rule: str,
    pattern: dict[str, Any] | None,
    target_id: str,
    arn: str,
    schedule: str | None = None,
) -> None:
    """An enabled EventBridge rule (an event pattern, or a schedule) with one target."""
    kind = {"ScheduleExpression": schedule} if schedule else {"EventPattern": json.dumps(pattern)}
    events.put_rule(Name=rule, State="ENABLED", **kind)
    events.put_targets(Rule=rule, Targets=[{"Id": target_id, "Arn": arn}])


def _queue_arn(sqs: Any, url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


def notify_unsuccessful_executions(cloud: LocalCloud, stack: Stack) -> str:
    """The execution status rule -> the notify function (which publishes to the topic), as
    in the CDK app; plus an SQS queue subscribed to the topic, where the local cloud's
    notifications can be read back. Its URL."""
    events = cloud.client("events")
    _route(
        events,
        resources.EXECUTION_STATUS_RULE,
        resources.execution_status_event_pattern(stack.state_machine_arn),
        "notify",
        stack.function_arns["notify"],
    )
    sqs = cloud.client("sqs")
    url = str(sqs.create_queue(QueueName=NOTIFICATION_INBOX)["QueueUrl"])
    queue_arn = _queue_arn(sqs, url)
    cloud.client("sns").subscribe(
        TopicArn=stack.topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


def read_notifications(cloud: LocalCloud, stack: Stack, wait_seconds: int = 0) -> list[Any]:
    """Every notification waiting in the inbox (JSON messages parsed), removing them."""
    sqs = cloud.client("sqs")
    found: list[Any] = []
    while True:
        out = sqs.receive_message(
            QueueUrl=stack.notification_queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds if not found else 0,
        )
        messages = out.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            try:
                found.append(json.loads(message["Body"]))
            except ValueError:
                found.append(message["Body"])
            sqs.delete_message(
                QueueUrl=stack.notification_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def enable_triggers(cloud: LocalCloud, stack: Stack) -> None:
    """The EventBridge side, as the CDK app builds it: bucket notifications to EventBridge;
    the ECR rule and the registry-approval rule -> trigger; the S3 rule -> the data-events
    queue, which the trigger reads in batches for the local debounce window; the
    execution-closed rule -> lock-events."""
    cloud.client("s3").put_bucket_notification_configuration(
        Bucket=stack.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    events = cloud.client("events")
    trigger_arn = stack.function_arns["trigger"]
    _route(
        events,
        resources.ECR_PUSH_RULE,
        resources.ecr_push_event_pattern(stack.repository),
        "trigger",
        trigger_arn,
    )
    _route(
        events,
        resources.REGISTRY_APPROVAL_RULE,
        resources.registry_approval_event_pattern(str(stack.defaults["model_package_group"])),
        "trigger",
        trigger_arn,
    )
    debounce = resources.data_trigger()
    sqs = cloud.client("sqs")
    queue_url = sqs.create_queue(
        QueueName=resources.DATA_EVENTS_QUEUE,
        Attributes={"VisibilityTimeout": str(6 * 60 + debounce.local_debounce_seconds)},
    )["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue_url)
    _route(
        events,
        resources.S3_DATA_RULE,
        resources.s3_data_event_pattern(stack.bucket),
        "queue",
        queue_arn,
    )
    assert cloud.queues is not None, "the local cloud is not running"
    cloud.queues.add(
        EventSource(
            queue_url=queue_url,
            queue_arn=queue_arn,
            function_arn=trigger_arn,
            batch_size=debounce.max_batch_size,
            window_seconds=debounce.local_debounce_seconds,
        )
    )
    _route(
        events,
        resources.EXECUTION_CLOSED_RULE,
        resources.execution_closed_event_pattern(stack.state_machine_arn),
        "lock-events",
        stack.function_arns["lock-events"],
    )


def image_manifest(label: str) -> str:
    """A Docker image manifest (v2 schema 2) whose digest changes with `label`."""
    import hashlib

    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1024,
                "digest": digest(f"config:{label}"),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 4096,
                    "digest": digest(f"layer:{label}"),
                }
            ],
        }
    )


def push_image(cloud: LocalCloud, stack: Stack, label: str, tag: str = "latest") -> str:
    """PutImage of a manifest (what `docker push` ends with); returns the image digest."""
    out = cloud.client("ecr").put_image(
        repositoryName=stack.repository, imageManifest=image_manifest(label), imageTag=tag
    )
    return str(out["image"]["imageId"]["imageDigest"])
