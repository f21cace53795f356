"""The Lambda functions, built in one loop from shared.resources.FUNCTIONS.

Each function gets its own role with exactly the permissions its code needs (PERMISSIONS,
one entry per spec key: a new spec without an entry fails the synth), its own log group
with retention, JSON logs, active X-Ray tracing, the spec's timeout and memory, and the one
dependency layer. Code and layer come from the build directory made by
`python -m infra.build_lambda` (`make layer`): no Docker, no bundling at synth time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import build_lambda, nag
from infra.constructs.sagemaker import SageMakerResources, sagemaker_arn
from infra.permissions import PERMISSIONS, Grant
from shared import resources

RUNTIME = lambda_.Runtime.PYTHON_3_12
assert RUNTIME.name == resources.LAMBDA_RUNTIME, "shared/resources.py LAMBDA_RUNTIME drifted"
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class BuildMissingError(FileNotFoundError):
    """The Lambda build directory is missing or was built for another runtime."""


@dataclass(frozen=True)
class GrantScope:
    """The permission builders' scope (infra.permissions.Scope) over the app's constructs."""

    construct: Construct
    bucket: s3.IBucket
    state_machine_arn: str
    sagemaker: SageMakerResources
    table: dynamodb.ITable
    topic: sns.ITopic

    def sm(self, resource_type: str, name: str = "*") -> str:
        return sagemaker_arn(self.construct, resource_type, name)

    @property
    def bucket_arn(self) -> str:
        return self.bucket.bucket_arn

    def objects(self, pattern: str) -> str:
        return self.bucket.arn_for_objects(pattern)

    @property
    def sagemaker_role_arn(self) -> str:
        return self.sagemaker.role.role_arn

    @property
    def alarm_arns(self) -> list[str]:
        return [a.alarm_arn for a in (*self.sagemaker.alarms, *self.sagemaker.staging_alarms)]

    @property
    def endpoint_arns(self) -> list[str]:
        # config/pipeline.yaml's endpoints; SageMaker lower-cases names in ARNs
        names = (self.sagemaker.endpoint_name, self.sagemaker.staging_endpoint_name)
        return [self.sm("endpoint", name.lower()) for name in names if name]

    @property
    def drift_role_arn(self) -> str:
        return self.sagemaker.drift_role.role_arn

    @property
    def group(self) -> str:
        # SageMaker lower-cases names in ARNs.
        return self.sagemaker.model_package_group_name.lower()

    @property
    def table_arn(self) -> str:
        return self.table.table_arn

    @property
    def executions_arn(self) -> str:
        return Stack.of(self.construct).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{resources.STATE_MACHINE_NAME}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    @property
    def topic_arn(self) -> str:
        return self.topic.topic_arn


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
