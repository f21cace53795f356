"""The grants of each Lambda function's role: exactly the AWS calls its code makes, on the
narrowest resources. Plain data over ARN strings (no CDK import): the CDK app turns them into
the roles' policy statements (infra/constructs/functions.py) and the local cloud into the
policies it enforces on each function's worker (sfn_mlops/local/iam.py), so both use one list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared import resources


@dataclass
class Grant:
    """A policy statement, and why its wildcard resources are needed (if any)."""

    actions: list[str]
    resources: list[str]
    why_wildcard: str | None = None
    conditions: dict[str, Any] = field(default_factory=dict)


class Scope(Protocol):
    """What the permission builders may reference: ARNs (CDK tokens in the app, strings in
    the local cloud)."""

    @property
    def state_machine_arn(self) -> str: ...

    @property
    def bucket_arn(self) -> str: ...

    def objects(self, pattern: str) -> str:
        """The ARN of the bucket's objects matching `pattern` (e.g. 'runs/*')."""
        ...

    def sm(self, resource_type: str, name: str = "*") -> str: ...

    @property
    def group(self) -> str:
        """The model package group's name as it appears in ARNs (lower case)."""
        ...

    @property
    def sagemaker_role_arn(self) -> str: ...

    @property
    def endpoint_arns(self) -> list[str]:
        """The stack's endpoints (config/pipeline.yaml endpoint_name and, unless null,
        staging_endpoint_name); ValidateInput refuses a payload naming any other."""
        ...

    @property
    def alarm_arns(self) -> list[str]: ...

    @property
    def table_arn(self) -> str:
        """The coordination table (shared.resources.COORDINATION_TABLE)."""
        ...

    @property
    def executions_arn(self) -> str:
        """Executions of this state machine: arn:...:execution:<state machine name>:*"""
        ...

    @property
    def drift_role_arn(self) -> str:
        """The drift job's role (shared.resources.DRIFT_JOB_ROLE)."""
        ...

    @property
    def topic_arn(self) -> str:
        """The notification topic (shared.resources.FAILURE_TOPIC)."""
        ...


_PER_EXECUTION = (
    "SageMaker job, model and endpoint-config names derive from each execution name "
    "(shared/naming.py), so only the resource type can be fixed in the ARN (the endpoints "
    "are the stack's own: Scope.endpoint_arns)"
)
_RAW_DATA = (
    "the payload's raw_data_uri may name any prefix of the data bucket; validate reads only "
    "the first data object's header"
)
_RUN_OBJECTS = "run outputs are written under runs/<execution>/<step>/, one prefix per execution"
_LIST_ONLY = (
    "sagemaker:ListModelPackages has no resource-level permissions (IAM requires '*'); the "
    "function reads packages of the configured group only"
)


_LIST_JOBS = (
    "sagemaker:List*Jobs has no resource-level permissions (IAM requires '*'); the function "
    "lists the step's last completed job once, to predict its duration (shared/schedule.py)"
)


def _job_grants(g: Scope, kind: str, create: str, describe: str) -> list[Grant]:
    listing = "ListProcessingJobs" if kind == "processing-job" else "ListTrainingJobs"
    return [
        Grant(
            [f"sagemaker:{create}", f"sagemaker:{describe}", "sagemaker:AddTags"],
            [g.sm(kind)],
            _PER_EXECUTION,
        ),
        Grant([f"sagemaker:{listing}"], ["*"], _LIST_JOBS),
        _pass_role(g),
    ]


def _read_runs(g: Scope) -> Grant:
    return Grant(["s3:GetObject"], [g.objects(f"{resources.ARTIFACTS_PREFIX}*")], _RUN_OBJECTS)


def _list(g: Scope, prefix: str) -> Grant:
    return Grant(
        ["s3:ListBucket"],
        [g.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
    )


def _champion(g: Scope) -> list[Grant]:
    """Find the production (champion) model: the endpoint's config and its model."""
    return [
        Grant(
            ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
             "sagemaker:DescribeModel"],
            [*g.endpoint_arns, g.sm("endpoint-config"), g.sm("model")],
            _PER_EXECUTION,
        ),
    ]  # fmt: skip


def _pass_role(g: Scope) -> Grant:
    return Grant(
        ["iam:PassRole"],
        [g.sagemaker_role_arn],
        conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )


_GROUP_VERSIONS = "model package versions of the configured group: <group>/<version>"

#: Key prefixes (dynamodb:LeadingKeys) each kind of item uses: shared/adapters/dynamodb.py
#: callers (functions/lock/logic.py lock_key, functions/trigger/logic.py claim_key).
LOCK_KEYS = "lock#*"
CLAIM_KEYS = "event#*"
DATA_RUN_KEYS = "datarun#*"  # shared/data_runs.py data_run_key
COOLDOWN_KEYS = "drift#*"  # functions/trigger/logic.py cooldown_key


def _items(g: Scope, actions: list[str], keys: str) -> Grant:
    """Item-level access to the coordination table, limited to one kind of key."""
    return Grant(
        [f"dynamodb:{a}" for a in actions],
        [g.table_arn],
        conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys]}},
    )


_EXECUTIONS = (
    "the lock's owner is any execution of this state machine (its name comes from the "
    "triggering event), so only the state machine can be fixed in the ARN"
)
_OWNER_INDEX = "the owner index of the coordination table: a closed execution's locks"

#: key -> the grants of that function's role (beyond its own log group and X-Ray): exactly
#: the AWS calls its code makes (through shared/adapters), on the narrowest resources.
PERMISSIONS: Mapping[str, Callable[[Scope], list[Grant]]] = {
    # StartExecution; a claim per event (which delivery was the duplicate); the data-run
    # item (take, mark a follow-up, see and DescribeExecution its RUNNING owner).
    "trigger": lambda g: [
        Grant(["states:StartExecution"], [g.state_machine_arn]),
        _items(g, ["PutItem"], CLAIM_KEYS),
        _items(g, ["PutItem", "GetItem", "UpdateItem"], DATA_RUN_KEYS),
        Grant(["states:DescribeExecution"], [g.executions_arn], _EXECUTIONS),
        # the drift alarm's cooldown window (its owner: the retraining it started)
        _items(g, ["PutItem", "GetItem"], COOLDOWN_KEYS),
    ],
    # The data checks before any job: list the raw data prefix, ranged GET of its first
    # object's header (CSV) or footer (Parquet). raw_data_uri may name any prefix of the bucket.
    # A registry approval's run: the approved package (group, status, container, metadata).
    "validate": lambda g: [
        Grant(["s3:ListBucket"], [g.bucket_arn]),
        Grant(["s3:GetObject"], [g.objects("*")], _RAW_DATA),
        Grant(
            ["sagemaker:DescribeModelPackage"],
            [g.sm("model-package", f"{g.group}/*")],
            _GROUP_VERSIONS,
        ),
    ],
    "preprocess": lambda g: _job_grants(
        g, "processing-job", "CreateProcessingJob", "DescribeProcessingJob"
    ),
    "train": lambda g: _job_grants(g, "training-job", "CreateTrainingJob", "DescribeTrainingJob"),
    "poll": lambda g: [
        Grant(["sagemaker:DescribeProcessingJob"], [g.sm("processing-job")], _PER_EXECUTION),
        Grant(["sagemaker:DescribeTrainingJob"], [g.sm("training-job")], _PER_EXECUTION),
        Grant(["sagemaker:DescribeEndpoint"], g.endpoint_arns),
    ],
    "evaluate": lambda g: [
        *_job_grants(g, "processing-job", "CreateProcessingJob", "DescribeProcessingJob"),
        *_champion(g),
    ],
    # The gate reads the evaluation report the evaluate job wrote under runs/.
    "gate": lambda g: [_read_runs(g)],
    # The deployment lock: take (conditional put), see the holder, DescribeExecution it.
    "lock-acquire": lambda g: [
        _items(g, ["PutItem", "GetItem"], LOCK_KEYS),
        Grant(["states:DescribeExecution"], [g.executions_arn], _EXECUTIONS),
    ],
    # CheckChampion: the champion now; a re-evaluation job if it changed (as evaluate).
    "recheck": lambda g: [
        *_job_grants(g, "processing-job", "CreateProcessingJob", "DescribeProcessingJob"),
        *_champion(g),
    ],
    "lock-release": lambda g: [_items(g, ["DeleteItem"], LOCK_KEYS)],
    # Execution closed: its locks by owner (index query), then a conditional delete of each;
    # the data-run item freed, and the follow-up data run started (taking the item) if due.
    "lock-events": lambda g: [
        _items(g, ["DeleteItem"], LOCK_KEYS),
        Grant(["dynamodb:Query"], [f"{g.table_arn}/index/*"], _OWNER_INDEX),
        _items(g, ["PutItem", "GetItem", "UpdateItem", "DeleteItem"], DATA_RUN_KEYS),
        Grant(["states:DescribeExecution"], [g.executions_arn], _EXECUTIONS),
        Grant(["states:StartExecution"], [g.state_machine_arn]),
    ],
    # The failure notification: the failed execution's history (which state), one publish.
    # (The topic's KMS key lets this role use it through SNS only: a key policy statement,
    # infra/constructs/notifications.py, not a grant here.)
    "notify": lambda g: [
        Grant(
            ["states:GetExecutionHistory"],
            [g.executions_arn],
            "the failed execution is any execution of this state machine (its name comes "
            "from the triggering event), so only the state machine can be fixed in the ARN",
        ),
        Grant(["sns:Publish"], [g.topic_arn]),
    ],
    "register": lambda g: [
        Grant(
            ["sagemaker:DescribeModelPackageGroup", "sagemaker:CreateModelPackageGroup",
             "sagemaker:AddTags"],
            [g.sm("model-package-group", g.group)],
        ),
        Grant(
            ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage",
             "sagemaker:UpdateModelPackage", "sagemaker:AddTags"],
            [g.sm("model-package", f"{g.group}/*")],
            _GROUP_VERSIONS,
        ),
        Grant(["sagemaker:ListModelPackages"], ["*"], _LIST_ONLY),
    ],
    "deploy": lambda g: [
        Grant(
            ["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:AddTags"],
            [g.sm("model")],
            _PER_EXECUTION,
        ),
        Grant(
            ["sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig",
             "sagemaker:AddTags"],
            [g.sm("endpoint-config")],
            _PER_EXECUTION,
        ),
        # Create/UpdateEndpoint authorise on the endpoint and on the config it moves to.
        Grant(
            ["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint",
             "sagemaker:DescribeEndpoint", "sagemaker:AddTags"],
            [*g.endpoint_arns, g.sm("endpoint-config")],
            _PER_EXECUTION,
        ),
        _pass_role(g),
        # UpdateEndpoint's AutoRollbackConfiguration names the alarms; SageMaker reads them.
        Grant(["cloudwatch:DescribeAlarms"], g.alarm_arns),
        # It still holds the deployment lock, or takes it back after a redrive (if free).
        _items(g, ["GetItem", "PutItem"], LOCK_KEYS),
    ],
    # The scheduled drift check: the serving model (endpoint, config, model, its package
    # tag, the package's baseline), which capture hours hold objects, then the job, run
    # with the drift job's own role.
    "monitor": lambda g: [
        Grant(
            ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
             "sagemaker:DescribeModel", "sagemaker:ListTags"],
            [*g.endpoint_arns, g.sm("endpoint-config"), g.sm("model")],
            _PER_EXECUTION,
        ),
        Grant(["sagemaker:DescribeModelPackage"], [g.sm("model-package", f"{g.group}/*")],
              _GROUP_VERSIONS),
        Grant(["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
               "sagemaker:AddTags"], [g.sm("processing-job")],
              "drift job names derive from the endpoint and the scheduled time"),
        _list(g, resources.CAPTURE_PREFIX),
        Grant(
            ["iam:PassRole"],
            [g.drift_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
    ],
    "invoke": lambda g: [
        # the request may name either of the stack's endpoints (default: production)
        Grant(["sagemaker:InvokeEndpoint"], g.endpoint_arns),
        # Sample rows: the first .csv under the preprocess step's sample/ prefix.
        _list(g, resources.ARTIFACTS_PREFIX),
        _read_runs(g),
    ],
    # The staging load check: concurrent single-row invocations of the sample rows.
    "loadcheck": lambda g: [
        Grant(["sagemaker:InvokeEndpoint"], g.endpoint_arns),
        _list(g, resources.ARTIFACTS_PREFIX),
        _read_runs(g),
    ],
}  # fmt: skip


_CAPTURE = "capture files are written per endpoint, variant and hour (yyyy/mm/dd/hh)"
_BASELINES = "each model's baseline lies beside its evaluation report: runs/<execution>/evaluate/"
_REPORTS = "one report prefix per endpoint and check time: monitoring/<endpoint>/<time>/"


def drift_job_grants(g: Scope) -> list[Grant]:
    """The drift job's role (SageMaker assumes it to run the check): read the capture and
    the baselines, write its reports and its CloudWatch metrics; nothing else."""
    return [
        Grant(["s3:GetObject"], [g.objects(f"{resources.CAPTURE_PREFIX}*")], _CAPTURE),
        Grant(
            ["s3:GetObject"], [g.objects(f"{resources.ARTIFACTS_PREFIX}*/evaluate/*")], _BASELINES
        ),
        _list(g, resources.CAPTURE_PREFIX),
        _list(g, resources.ARTIFACTS_PREFIX),
        Grant(["s3:PutObject"], [g.objects(f"{resources.MONITORING_PREFIX}*")], _REPORTS),
        Grant(
            ["cloudwatch:PutMetricData"],
            ["*"],
            "PutMetricData has no resource-level permissions; the condition fixes the namespace",
            conditions={"StringEquals": {"cloudwatch:namespace": resources.MONITORING_NAMESPACE}},
        ),
    ]


def policy_document(grants: list[Grant]) -> dict[str, Any]:
    """An IAM policy document (JSON) with one Allow statement per grant."""
    statements: list[dict[str, Any]] = []
    for grant in grants:
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Action": list(grant.actions),
            "Resource": list(grant.resources),
        }
        if grant.conditions:
            statement["Condition"] = grant.conditions
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}
