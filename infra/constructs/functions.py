"""The Lambda functions, built in one loop from shared.resources.FUNCTIONS.

Each function gets its own role with exactly the permissions its code needs (PERMISSIONS,
one entry per spec key: a new spec without an entry fails the synth), its own log group
with retention, JSON logs, active X-Ray tracing, the spec's timeout and memory, and the one
dependency layer. Code and layer come from the build directory made by
`python -m infra.build_lambda` (`make layer`): no Docker, no bundling at synth time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import build_lambda, nag
from infra.constructs.coordination import CLAIM_KEYS, DATA_RUN_KEYS, LOCK_KEYS
from infra.constructs.sagemaker import SageMakerResources, sagemaker_arn
from shared import resources

RUNTIME = lambda_.Runtime.PYTHON_3_12
assert RUNTIME.name == resources.LAMBDA_RUNTIME, "shared/resources.py LAMBDA_RUNTIME drifted"
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class BuildMissingError(FileNotFoundError):
    """The Lambda build directory is missing or was built for another runtime."""


@dataclass
class Grant:
    """A policy statement, and why its wildcard resources are needed (if any)."""

    actions: list[str]
    resources: list[str]
    why_wildcard: str | None = None
    conditions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GrantScope:
    """What the permission builders may reference."""

    construct: Construct
    bucket: s3.IBucket
    state_machine_arn: str
    sagemaker: SageMakerResources
    table: dynamodb.ITable

    def sm(self, resource_type: str, name: str = "*") -> str:
        return sagemaker_arn(self.construct, resource_type, name)

    @property
    def group(self) -> str:
        # SageMaker lower-cases names in ARNs.
        return self.sagemaker.model_package_group_name.lower()


_PER_EXECUTION = (
    "SageMaker job, model and endpoint-config names derive from each execution name "
    "(shared/naming.py) and the endpoint name comes from the payload, so only the resource "
    "type can be fixed in the ARN"
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


def _job_grants(g: GrantScope, kind: str, create: str, describe: str) -> list[Grant]:
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


def _read_runs(g: GrantScope) -> Grant:
    return Grant(
        ["s3:GetObject"], [g.bucket.arn_for_objects(f"{resources.ARTIFACTS_PREFIX}*")], _RUN_OBJECTS
    )


def _list(g: GrantScope, prefix: str) -> Grant:
    return Grant(
        ["s3:ListBucket"],
        [g.bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
    )


def _champion(g: GrantScope) -> list[Grant]:
    """Find the production (champion) model: the endpoint's config and its model."""
    return [
        Grant(
            ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
             "sagemaker:DescribeModel"],
            [g.sm("endpoint"), g.sm("endpoint-config"), g.sm("model")],
            _PER_EXECUTION,
        ),
    ]  # fmt: skip


def _pass_role(g: GrantScope) -> Grant:
    return Grant(
        ["iam:PassRole"],
        [g.sagemaker.role.role_arn],
        conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )


_GROUP_VERSIONS = "model package versions of the configured group: <group>/<version>"


def _items(g: GrantScope, actions: list[str], keys: str) -> Grant:
    """Item-level access to the coordination table, limited to one kind of key."""
    return Grant(
        [f"dynamodb:{a}" for a in actions],
        [g.table.table_arn],
        conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys]}},
    )


def _executions(g: GrantScope) -> str:
    """Executions of this state machine: arn:...:execution:<state machine name>:*"""
    return Stack.of(g.construct).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{resources.STATE_MACHINE_NAME}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


_EXECUTIONS = (
    "the lock's owner is any execution of this state machine (its name comes from the "
    "triggering event), so only the state machine can be fixed in the ARN"
)
_OWNER_INDEX = "the owner index of the coordination table: a closed execution's locks"

#: key -> the grants of that function's role (beyond its own log group and X-Ray): exactly
#: the AWS calls its code makes (through shared/adapters), on the narrowest resources.
PERMISSIONS: Mapping[str, Callable[[GrantScope], list[Grant]]] = {
    # StartExecution; a claim per event (which delivery was the duplicate); the data-run
    # item (take, mark a follow-up, see and DescribeExecution its RUNNING owner).
    "trigger": lambda g: [
        Grant(["states:StartExecution"], [g.state_machine_arn]),
        _items(g, ["PutItem"], CLAIM_KEYS),
        _items(g, ["PutItem", "GetItem", "UpdateItem"], DATA_RUN_KEYS),
        Grant(["states:DescribeExecution"], [_executions(g)], _EXECUTIONS),
    ],
    # Pure validation over the defaults in its environment: no AWS access at all.
    "validate": lambda g: [],
    "preprocess": lambda g: _job_grants(
        g, "processing-job", "CreateProcessingJob", "DescribeProcessingJob"
    ),
    "train": lambda g: _job_grants(g, "training-job", "CreateTrainingJob", "DescribeTrainingJob"),
    "poll": lambda g: [
        Grant(["sagemaker:DescribeProcessingJob"], [g.sm("processing-job")], _PER_EXECUTION),
        Grant(["sagemaker:DescribeTrainingJob"], [g.sm("training-job")], _PER_EXECUTION),
        Grant(["sagemaker:DescribeEndpoint"], [g.sm("endpoint")], _PER_EXECUTION),
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
        Grant(["states:DescribeExecution"], [_executions(g)], _EXECUTIONS),
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
        Grant(["dynamodb:Query"], [f"{g.table.table_arn}/index/*"], _OWNER_INDEX),
        _items(g, ["PutItem", "GetItem", "UpdateItem", "DeleteItem"], DATA_RUN_KEYS),
        Grant(["states:DescribeExecution"], [_executions(g)], _EXECUTIONS),
        Grant(["states:StartExecution"], [g.state_machine_arn]),
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
            [g.sm("endpoint"), g.sm("endpoint-config")],
            _PER_EXECUTION,
        ),
        _pass_role(g),
        # UpdateEndpoint's AutoRollbackConfiguration names the alarms; SageMaker reads them.
        Grant(["cloudwatch:DescribeAlarms"], [a.alarm_arn for a in g.sagemaker.alarms]),
        # It still holds the deployment lock, or takes it back after a redrive (if free).
        _items(g, ["GetItem", "PutItem"], LOCK_KEYS),
    ],
    "invoke": lambda g: [
        Grant(
            ["sagemaker:InvokeEndpoint"],
            [g.sm("endpoint")],
            "the endpoint name is a per-request parameter (default from config/pipeline.yaml)",
        ),
        # Sample rows: the first .csv under the preprocess step's sample/ prefix.
        _list(g, resources.ARTIFACTS_PREFIX),
        _read_runs(g),
    ],
}  # fmt: skip


def read_manifest(build_dir: Path) -> dict[str, Any]:
    """The build's manifest, checked against the runtime this app deploys."""
    manifest_path = build_dir / "manifest.json"
    if not manifest_path.is_file():
        raise BuildMissingError(
            f"{manifest_path} not found: build the Lambda assets first "
            f"(`make layer`, i.e. `python -m infra.build_lambda {build_dir}`)"
        )
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    if manifest.get("python_version") != build_lambda.PYTHON_VERSION:
        raise BuildMissingError(
            f"{build_dir} was built for Python {manifest.get('python_version')}, the functions "
            f"run {build_lambda.PYTHON_VERSION}: rebuild with `make layer`"
        )
    if manifest.get("architecture") not in ARCHITECTURES:
        raise BuildMissingError(f"{manifest_path}: unknown architecture")
    return manifest


class PipelineFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        build_dir: Path,
        environment: Mapping[str, str],
        grants: GrantScope,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        manifest = read_manifest(build_dir)
        self.architecture = ARCHITECTURES[manifest["architecture"]]
        missing = sorted(set(PERMISSIONS) ^ set(resources.FUNCTIONS_BY_KEY))
        if missing:
            raise KeyError(f"PERMISSIONS and shared.resources.FUNCTIONS disagree on {missing}")

        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(build_dir / "layer")),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[self.architecture],
            description=("shared/ + " + ", ".join(manifest["requirements"]))[:256],
        )
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        for spec in resources.FUNCTIONS:
            self._function(spec, build_dir, environment, grants, log_retention)

    def _function(
        self,
        spec: resources.FunctionSpec,
        build_dir: Path,
        environment: Mapping[str, str],
        grants: GrantScope,
        log_retention: logs.RetentionDays,
    ) -> None:
        code_dir = build_dir / "functions" / spec.key
        if not code_dir.is_dir():
            raise BuildMissingError(f"{code_dir} not found: rebuild with `make layer`")
        name = spec.key.capitalize()
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            log_group_name=f"/aws/lambda/{spec.function_name}",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{spec.function_name}: {spec.description}"[:1000],
        )
        # Its own log group only (instead of the AWSLambdaBasicExecutionRole managed policy).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        for grant in PERMISSIONS[spec.key](grants):
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=grant.actions,
                    resources=grant.resources,
                    conditions=grant.conditions or None,
                )
            )
        self._acknowledge_wildcards(role, spec, PERMISSIONS[spec.key](grants))

        function = lambda_.Function(
            self,
            name,
            function_name=spec.function_name,
            description=spec.description[:256],
            runtime=RUNTIME,
            architecture=self.architecture,
            handler=spec.handler,
            code=lambda_.Code.from_asset(str(code_dir)),
            layers=[self.layer],
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            environment=resources.function_environment(spec, dict(environment)),
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE,
        )
        nag.acknowledge(
            function,
            "L1",
            "pinned to python3.12 on purpose: the dependency layer is built from cp312 wheels "
            "(pydantic-core is compiled) by infra/build_lambda.py; bump both together",
        )
        self.functions[spec.key] = function
        self.roles[spec.key] = role

    @staticmethod
    def _acknowledge_wildcards(
        role: iam.Role, spec: resources.FunctionSpec, grants: list[Grant]
    ) -> None:
        """One acknowledgment per wildcard finding on this role, with every reason for it."""
        stack = Stack.of(role)
        reasons: dict[str, list[str]] = {
            # Active tracing adds these to every function role.
            "Resource::*": [
                "X-Ray active tracing: xray:PutTraceSegments/PutTelemetryRecords have no "
                "resource-level permissions"
            ]
        }
        for grant in grants:
            for resource in grant.resources:
                resolved = stack.resolve(resource)
                if "*" not in json.dumps(resolved):
                    continue
                if not grant.why_wildcard:
                    raise ValueError(f"{spec.key}: {grant.actions} on {resource} needs a reason")
                finding = f"Resource::{nag.render(resolved)}"
                reason = f"{', '.join(grant.actions)}: {grant.why_wildcard}"
                if reason not in reasons.setdefault(finding, []):
                    reasons[finding].append(reason)
        for finding, why in reasons.items():
            nag.acknowledge(
                role, "IAM5", f"{spec.function_name}: " + "; ".join(why), applies_to=[finding]
            )

    @property
    def workflow_functions(self) -> dict[str, lambda_.Function]:
        """placeholder name (e.g. ValidateFunctionArn) -> function, for the ASL."""
        return {
            spec.asl_placeholder: self.functions[spec.key]
            for spec in resources.FUNCTIONS
            if spec.asl_placeholder
        }
