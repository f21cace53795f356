"""The one module of names and settings that the CDK app (infra/) and the local cloud
(sfn_mlops/local) both build from, so the two cannot drift. Pure data: no AWS calls, no
heavy imports (it ships in the Lambda layer but no Lambda needs to import it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = "sfn-mlops"
REPO_ROOT = Path(__file__).resolve().parent.parent
PIPELINE_CONFIG = REPO_ROOT / "config" / "pipeline.yaml"
ASL_PATH = REPO_ROOT / "state_machine" / "asl.json"
CONTAINER_DIR = REPO_ROOT / "container"

STATE_MACHINE_NAME = f"{PROJECT}-pipeline"
ECR_REPOSITORY = f"{PROJECT}-model"
FAILURE_TOPIC = f"{PROJECT}-notifications"
DATA_PREFIX = "data/"  # raw CSV files; an Object Created here starts a retraining run
ARTIFACTS_PREFIX = "runs/"  # <execution>/<step>/... outputs of every step
# <execution>/train/: Spot training checkpoints (CheckpointConfig), expired after some days
CHECKPOINTS_PREFIX = "checkpoints/"
CHECKPOINT_EXPIRY_DAYS = 14
METRICS_NAMESPACE = "SfnMlops"
#: Data capture (the production endpoint's DataCaptureConfig) writes SageMaker's JSON Lines
#: under <CAPTURE_PREFIX><endpoint>/<variant>/yyyy/mm/dd/hh/ (sfn_mlops/local/capture.py too).
CAPTURE_PREFIX = "capture/"
#: The drift check's reports: <MONITORING_PREFIX><endpoint>/<check time>/drift.json
MONITORING_PREFIX = "monitoring/"
#: The drift check's CloudWatch metrics (one per feature, plus the drifted-feature count).
MONITORING_NAMESPACE = "SfnMlops/Monitoring"
#: DriftedFeatures >= 1 on the production endpoint -> one retraining (functions/trigger).
DRIFT_ALARM_NAME = f"{PROJECT}-drift"
#: EventBridge: the drift check's schedule (-> functions/monitor) and the alarm's state
#: change into ALARM (-> functions/trigger).
DRIFT_SCHEDULE_RULE = f"{PROJECT}-drift-check"
DRIFT_ALARM_RULE = f"{PROJECT}-drift-alarm"
#: The drift job's own role (infra/permissions.py DRIFT_JOB_GRANTS): capture and baselines
#: in, reports and metrics out, nothing else.
DRIFT_JOB_ROLE = f"{PROJECT}-drift-job"
EXECUTION_TIMEOUT_SECONDS = 6 * 3600
ECR_PUSH_RULE = f"{PROJECT}-ecr-push"
S3_DATA_RULE = f"{PROJECT}-new-data"
#: The S3 rule's target: the queue the trigger's event source mapping batches (the debounce).
DATA_EVENTS_QUEUE = f"{PROJECT}-new-data"
SCHEDULE_RULE = f"{PROJECT}-schedule"
#: DynamoDB: the endpoints' deployment locks and the trigger's event claims (pk, owner index).
COORDINATION_TABLE = f"{PROJECT}-coordination"
#: Execution status change (any closing status) -> functions/lock: releases a closed
#: execution's deployment locks, starts a due follow-up data run.
EXECUTION_CLOSED_RULE = f"{PROJECT}-execution-closed"
#: Execution status change -> functions/notify -> the topic (failure notifications come from
#: here, not from a state; the function adds the failed state, which the event lacks)
EXECUTION_STATUS_RULE = f"{PROJECT}-execution-failed"
#: Statuses it notifies: values of botocore's ExecutionStatus enum (checked by a test).
NOTIFIED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
#: The endpoint's one production variant: the endpoint alarms' VariantName dimension, so the
#: deploy function must name its variant this for the rollback alarms to see its metrics.
ENDPOINT_VARIANT_NAME = "AllTraffic"
#: CloudWatch alarms a blue/green endpoint update rolls back on (deploy's ENDPOINT_ALARM_NAMES).
ENDPOINT_ALARM_NAMES = (f"{PROJECT}-endpoint-5xx", f"{PROJECT}-endpoint-latency")
#: The staging endpoint's alarms (its updates roll back on them too; same metrics, in order).
STAGING_ALARM_NAMES = (f"{PROJECT}-staging-5xx", f"{PROJECT}-staging-latency")
#: The metric each of ENDPOINT_ALARM_NAMES watches (AWS/SageMaker namespace), in order.
ENDPOINT_ALARM_METRICS = ("Invocation5XXErrors", "ModelLatency")
#: Where the local cloud, the in-process moto tests and the benchmarks live (moto's default
#: account; any region works, one name keeps them together).
LOCAL_REGION = "us-east-1"
#: The functions' runtime (infra/constructs/functions.py RUNTIME; the local cloud's too).
LAMBDA_RUNTIME = "python3.12"
LOCAL_ACCOUNT = "123456789012"


def bucket_name(account: str, region: str) -> str:
    """Data and artifact bucket (S3 names are global, hence account and region)."""
    return f"{PROJECT}-{account}-{region}"


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda: everything the CDK app and the local cloud need to create it."""

    key: str  # short id: the folder under functions/ and the name suffix
    handler: str  # module.function, relative to the code root
    description: str
    asl_placeholder: str | None  # ${...} name in the ASL definition; None if not in the workflow
    timeout_seconds: int = 60
    memory_mb: int = 256
    env: tuple[str, ...] = ()  # settings it reads (besides the Powertools ones)
    tracing: bool = False  # imports the Tracer (X-Ray)
    sagemaker_access: bool = False
    folder: str = field(default="")

    @property
    def function_name(self) -> str:
        return f"{PROJECT}-{self.key}"

    @property
    def code_folder(self) -> str:
        return self.folder or self.key.split("-")[0]


_BASE_ENV = ("ARTIFACT_BUCKET", "ARTIFACTS_PREFIX")

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "trigger",
        "functions.trigger.handler.lambda_handler",
        "EventBridge (ECR push, S3 Object Created, registry approval) -> StartExecution",
        None,
        env=(
            "STATE_MACHINE_ARN",
            "ECR_REPOSITORY",
            "DATA_PREFIX",
            "ARTIFACT_BUCKET",
            "COORDINATION_TABLE",
            "DRIFT_ALARM_NAME",
            "DRIFT_COOLDOWN_SECONDS",
            "MODEL_PACKAGE_GROUP",
        ),
    ),
    FunctionSpec(
        "validate",
        "functions.validate.handler.lambda_handler",
        "Validates and normalises the execution payload over the pipeline defaults",
        "ValidateFunctionArn",
        env=("PIPELINE_DEFAULTS", "DEFAULT_IMAGE_URI", "ARTIFACT_BUCKET", "DATA_PREFIX"),
        sagemaker_access=True,  # a registry approval's run describes the package
    ),
    FunctionSpec(
        "preprocess",
        "functions.preprocess.handler.lambda_handler",
        "Starts the preprocessing Processing job (split, profile)",
        "PreprocessFunctionArn",
        env=(*_BASE_ENV, "SAGEMAKER_ROLE_ARN"),
        sagemaker_access=True,
    ),
    FunctionSpec(
        "train",
        "functions.train.handler.lambda_handler",
        "Starts the SageMaker Training job",
        "TrainFunctionArn",
        env=(*_BASE_ENV, "SAGEMAKER_ROLE_ARN"),
        sagemaker_access=True,
    ),
    FunctionSpec(
        "poll",
        "functions.poll.handler.lambda_handler",
        "Polls a processing job, training job or endpoint; adaptive, bounded",
        "PollFunctionArn",
        sagemaker_access=True,
    ),
    FunctionSpec(
        "evaluate",
        "functions.evaluate.handler.lambda_handler",
        "Starts the evaluation Processing job: challenger and champion on the same test split",
        "EvaluateFunctionArn",
        env=(*_BASE_ENV, "SAGEMAKER_ROLE_ARN"),
        sagemaker_access=True,
    ),
    FunctionSpec(
        "gate",
        "functions.gate.handler.lambda_handler",
        "Reads the evaluation report and decides: threshold met and champion beaten?",
        "GateFunctionArn",
        env=_BASE_ENV,
    ),
    FunctionSpec(
        "lock-acquire",
        "functions.lock.handler.acquire_handler",
        "Takes the endpoint's deployment lock (or says who holds it); reclaims a dead owner's",
        "LockAcquireFunctionArn",
        env=("COORDINATION_TABLE",),
    ),
    FunctionSpec(
        "recheck",
        "functions.evaluate.handler.recheck_handler",
        "Under the lock: champion changed since evaluation? Then re-evaluate on the same split",
        "RecheckFunctionArn",
        env=(*_BASE_ENV, "SAGEMAKER_ROLE_ARN"),
        sagemaker_access=True,
        folder="evaluate",
    ),
    FunctionSpec(
        "lock-release",
        "functions.lock.handler.release_handler",
        "Releases the endpoint's deployment lock held by this execution",
        "LockReleaseFunctionArn",
        env=("COORDINATION_TABLE",),
    ),
    FunctionSpec(
        "lock-events",
        "functions.lock.handler.execution_closed_handler",
        "Execution closed -> releases its locks; frees the data run, starts a follow-up if due",
        None,
        env=("COORDINATION_TABLE", "STATE_MACHINE_ARN", "DATA_PREFIX"),
    ),
    FunctionSpec(
        "notify",
        "functions.notify.handler.lambda_handler",
        "Execution failed, timed out or stopped -> the notification: which state, error, cause",
        None,
        env=("NOTIFICATION_TOPIC_ARN",),
    ),
    FunctionSpec(
        "register",
        "functions.register.handler.lambda_handler",
        "Registers the model package (metrics, lineage, approval status)",
        "RegisterFunctionArn",
        env=_BASE_ENV,
        sagemaker_access=True,
    ),
    FunctionSpec(
        "deploy",
        "functions.deploy.handler.lambda_handler",
        "Creates or blue/green-updates the endpoint with alarm auto-rollback",
        "DeployFunctionArn",
        env=(
            *_BASE_ENV,
            "SAGEMAKER_ROLE_ARN",
            "ENDPOINT_ALARM_NAMES",
            "STAGING_ALARM_NAMES",
            "COORDINATION_TABLE",
            "DATA_CAPTURE_PERCENT",
        ),
        sagemaker_access=True,
    ),
    FunctionSpec(
        "loadcheck",
        "functions.invoke.handler.load_check_handler",
        "Staging: a short load (single-row requests, concurrent); p99 latency and error rate",
        "LoadCheckFunctionArn",
        timeout_seconds=120,
        folder="invoke",
    ),
    FunctionSpec(
        "invoke",
        "functions.invoke.handler.lambda_handler",
        "Inference: sends CSV/JSON rows to the endpoint (also the post-deploy smoke test)",
        "InvokeFunctionArn",
        env=("ARTIFACT_BUCKET",),
        timeout_seconds=30,
        tracing=True,
    ),
)

FUNCTIONS += (
    FunctionSpec(
        "monitor",
        "functions.monitor.handler.lambda_handler",
        "Schedule -> the drift check job over the production endpoint's captured traffic",
        None,
        env=(
            "ARTIFACT_BUCKET",
            "MONITORED_ENDPOINT",
            "MONITOR_ROLE_ARN",
            "MONITOR_WINDOW_HOURS",
            "DRIFT_ENVIRONMENT",
        ),
        sagemaker_access=True,
    ),
)
FUNCTIONS_BY_KEY = {f.key: f for f in FUNCTIONS}
#: ${...} placeholders in the ASL besides the function ARNs.
TOPIC_PLACEHOLDER = "NotificationTopicArn"


#: The deploy-time sections of config/pipeline.yaml (not per-execution defaults).
DATA_TRIGGER_KEY = "data_trigger"
MONITORING_KEY = "monitoring"
#: Lambda's limit for MaximumBatchingWindowInSeconds (botocore lambda model: max 300).
MAX_BATCHING_WINDOW_SECONDS = 300


def _config(path: Path) -> dict[str, Any]:
    import yaml  # PyYAML is needed here, not in any Lambda

    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of pipeline defaults")
    return data


def pipeline_defaults(path: Path = PIPELINE_CONFIG) -> dict[str, Any]:
    """config/pipeline.yaml's per-execution defaults as a dict (without the deploy-time
    sections `data_trigger` and `monitoring`)."""
    data = _config(path)
    data.pop(DATA_TRIGGER_KEY, None)
    data.pop(MONITORING_KEY, None)
    return data


@dataclass(frozen=True)
class DataTrigger:
    debounce_seconds: int
    local_debounce_seconds: int
    max_batch_size: int


def data_trigger(path: Path = PIPELINE_CONFIG) -> DataTrigger:
    """config/pipeline.yaml `data_trigger`, checked against Lambda's batching limits."""
    section = _config(path).get(DATA_TRIGGER_KEY) or {}
    try:
        trigger = DataTrigger(**section)
    except TypeError as exc:
        raise ValueError(f"{path}: {DATA_TRIGGER_KEY}: {exc}") from exc
    for name in ("debounce_seconds", "local_debounce_seconds"):
        value = getattr(trigger, name)
        if not (isinstance(value, int) and 0 < value <= MAX_BATCHING_WINDOW_SECONDS):
            raise ValueError(
                f"{path}: {DATA_TRIGGER_KEY}.{name} must be 1..{MAX_BATCHING_WINDOW_SECONDS} "
                f"seconds (Lambda's MaximumBatchingWindowInSeconds), got {value!r}"
            )
    if not (isinstance(trigger.max_batch_size, int) and 1 <= trigger.max_batch_size <= 10000):
        raise ValueError(f"{path}: {DATA_TRIGGER_KEY}.max_batch_size must be 1..10000")
    return trigger


@dataclass(frozen=True)
class Monitoring:
    """config/pipeline.yaml `monitoring` (see the comments there)."""

    capture_sampling_percentage: int
    schedule_minutes: int
    window_hours: int
    cooldown_hours: int
    min_records: int
    psi_threshold: float
    psi_bins: int
    ks_p_value: float

    @property
    def schedule_expression(self) -> str:
        """The drift check's EventBridge rate, as CDK's Schedule.rate renders it (the largest
        whole unit: 60 minutes is `rate(1 hour)`)."""
        units = (("day", 24 * 60), ("hour", 60), ("minute", 1))
        unit, size = next((u, n) for u, n in units if self.schedule_minutes % n == 0)
        count = self.schedule_minutes // size
        return f"rate({count} {unit}{'' if count == 1 else 's'})"

    def drift_environment(self) -> dict[str, str]:
        """The drift job's thresholds, as its environment (container/sfn_container/drift.py)."""
        return {
            "MIN_RECORDS": str(self.min_records),
            "PSI_THRESHOLD": repr(self.psi_threshold),
            "PSI_BINS": str(self.psi_bins),
            "KS_P_VALUE": repr(self.ks_p_value),
        }

    def function_values(self, endpoint_name: str, drift_role_arn: str) -> dict[str, str]:
        """The environment values the trigger and monitor functions declare (CDK and local)."""
        return {
            "DRIFT_ALARM_NAME": DRIFT_ALARM_NAME,
            "DRIFT_COOLDOWN_SECONDS": str(self.cooldown_hours * 3600),
            "MONITORED_ENDPOINT": endpoint_name,
            "MONITOR_ROLE_ARN": drift_role_arn,
            "MONITOR_WINDOW_HOURS": str(self.window_hours),
            "DRIFT_ENVIRONMENT": json.dumps(self.drift_environment(), sort_keys=True),
        }

    def alarm(self, endpoint_name: str) -> dict[str, Any]:
        """PutMetricAlarm of the drift alarm (the local cloud's; CDK builds the same)."""
        return {
            "AlarmName": DRIFT_ALARM_NAME,
            "AlarmDescription": "features of the production endpoint's traffic drifted "
            "from the serving model's training baseline: starts one retraining",
            "Namespace": MONITORING_NAMESPACE,
            "MetricName": "DriftedFeatures",
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
            "Statistic": "Maximum",
            "Period": self.schedule_minutes * 60,
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        }


def drift_alarm_event_pattern(alarm_arn: str) -> dict[str, Any]:
    """The drift alarm going into ALARM (CloudWatch's state change event)."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [alarm_arn],
        "detail": {"state": {"value": ["ALARM"]}},
    }


#: name -> (kind, low, high, what it is): the checks monitoring() applies, with the reason.
_MONITORING_RANGES: dict[str, tuple[type, float, float, str]] = {
    "capture_sampling_percentage": (int, 0, 100, "DataCaptureConfig InitialSamplingPercentage"),
    "schedule_minutes": (int, 5, 24 * 60, "the drift check's EventBridge rate, in minutes"),
    "window_hours": (int, 1, 9, "hours of capture per check (one ProcessingInput per hour)"),
    "cooldown_hours": (int, 1, 24 * 30, "at most one drift retraining per this many hours"),
    "min_records": (int, 30, 1_000_000, "captured requests a check needs to judge drift"),
    "psi_threshold": (float, 0.01, 10.0, "PSI at or above which a feature drifted"),
    "psi_bins": (int, 2, 50, "baseline quantile bins for PSI"),
    "ks_p_value": (float, 1e-9, 0.5, "KS significance level (Bonferroni over the features)"),
}


def monitoring(path: Path = PIPELINE_CONFIG) -> Monitoring:
    """config/pipeline.yaml `monitoring`, every value checked (a clear error names it)."""
    section = _config(path).get(MONITORING_KEY)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: {MONITORING_KEY}: a mapping of {sorted(_MONITORING_RANGES)}")
    unknown = sorted(set(section) - set(_MONITORING_RANGES))
    missing = sorted(set(_MONITORING_RANGES) - set(section))
    if unknown or missing:
        raise ValueError(
            f"{path}: {MONITORING_KEY}: unknown keys {unknown}, missing keys {missing}"
        )
    for name, (kind, low, high, what) in _MONITORING_RANGES.items():
        value = section[name]
        ok_type = isinstance(value, int | float) if kind is float else isinstance(value, int)
        if isinstance(value, bool) or not ok_type or not (low <= value <= high):
            noun = "an integer" if kind is int else "a number"
            raise ValueError(
                f"{path}: {MONITORING_KEY}.{name} ({what}) must be {noun} "
                f"in {low:g}..{high:g}, got {value!r}"
            )
    values: dict[str, Any] = {
        k: (float(v) if _MONITORING_RANGES[k][0] is float else v) for k, v in section.items()
    }
    result = Monitoring(**values)
    if result.window_hours * 60 < result.schedule_minutes:
        raise ValueError(
            f"{path}: {MONITORING_KEY}.window_hours ({result.window_hours} h) must cover "
            f"schedule_minutes ({result.schedule_minutes} min): traffic between checks would "
            "never be looked at"
        )
    return result


def pipeline_defaults_env(path: Path = PIPELINE_CONFIG) -> str:
    """The PIPELINE_DEFAULTS environment value: the config file as compact JSON."""
    return json.dumps(pipeline_defaults(path), separators=(",", ":"), sort_keys=True)


def ecr_push_event_pattern(repository: str) -> dict[str, Any]:
    return {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action"],
        "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"], "repository-name": [repository]},
    }


MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
#: A registry approval -> the trigger (a deployment run of that package).
REGISTRY_APPROVAL_RULE = f"{PROJECT}-registry-approval"


def registry_approval_event_pattern(group: str) -> dict[str, Any]:
    """This project's group's packages that are Approved. SageMaker emits the event for any
    change (metadata included), so the status is filtered here and the trigger's execution
    name (one per package) makes a repeated one start nothing."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [MODEL_PACKAGE_STATE_CHANGE],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]},
    }


def s3_data_event_pattern(bucket: str, prefix: str = DATA_PREFIX) -> dict[str, Any]:
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": prefix}]}},
    }


#: The coordination table's key and its index by owner (shared/adapters/dynamodb.py).
COORDINATION_KEY = "pk"
COORDINATION_OWNER_INDEX = "owner"
#: Claims of handled events expire (DynamoDB TTL) well after EventBridge stops retrying (24 h).
COORDINATION_TTL_ATTRIBUTE = "expires_at"


def coordination_table_request(name: str = COORDINATION_TABLE) -> dict[str, Any]:
    """CreateTable for the coordination table (the local cloud; the CDK app builds the same)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": COORDINATION_KEY, "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": COORDINATION_KEY, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": COORDINATION_OWNER_INDEX,
                "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    }


def execution_closed_event_pattern(state_machine_arn: str) -> dict[str, Any]:
    """A closed execution of the pipeline: it may still hold a lock (there is no Catch), and
    a data run's end may start its follow-up."""
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {
            "status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"],
            "stateMachineArn": [state_machine_arn],
        },
    }


def function_environment(spec: FunctionSpec, values: dict[str, str]) -> dict[str, str]:
    """A function's environment: the Powertools settings plus the keys its spec declares,
    taken from `values` (CDK tokens in the app, plain strings in the local cloud).

    A declared key missing from `values` is an error here, not a cold-start surprise.
    """
    missing = [k for k in spec.env if k not in values]
    if missing:
        raise KeyError(f"{spec.function_name}: no value for environment {missing}")
    env = {k: values[k] for k in spec.env}
    env.update(
        POWERTOOLS_SERVICE_NAME=spec.function_name,
        POWERTOOLS_METRICS_NAMESPACE=METRICS_NAMESPACE,
        POWERTOOLS_LOG_LEVEL="INFO",
    )
    return env


def execution_status_event_pattern(state_machine_arn: str) -> dict[str, Any]:
    """This state machine's executions that ended unsuccessfully (redrivable ones)."""
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"stateMachineArn": [state_machine_arn], "status": list(NOTIFIED_STATUSES)},
    }
