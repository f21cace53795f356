"""The state machine: the committed ASL (state_machine/asl.json) with its ${...}
placeholders filled by definition substitutions, logging ALL, X-Ray, and a role that may only
invoke the pipeline's functions and publish to the notification topic."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import nag
from shared import resources

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class DefinitionError(ValueError):
    """The committed ASL is missing, not JSON, or its placeholders disagree with the specs."""


def load_definition(path: Path, provided: set[str]) -> dict[str, Any]:
    """The ASL at `path`, checked: valid JSON, and its ${...} placeholders are exactly
    `provided` (a placeholder nobody fills would deploy a broken definition)."""
    if not path.is_file():
        raise DefinitionError(
            f"{path} not found: the state machine definition is rendered by `make asl` "
            "and committed; the CDK app deploys that file"
        )
    text = path.read_text()
    try:
        definition: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{path} is not valid JSON: {exc}") from exc
    used = set(PLACEHOLDER.findall(text))
    if used != provided:
        raise DefinitionError(
            f"{path} placeholders disagree with shared.resources: "
            f"unfilled {sorted(used - provided)}, unused {sorted(provided - used)}"
        )
    if not isinstance(definition.get("States"), dict) or "StartAt" not in definition:
        raise DefinitionError(f"{path} has no StartAt/States")
    return definition


class PipelineStateMachine(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        asl_path: Path,
        functions: Mapping[str, lambda_.IFunction],
        topic: sns.ITopic,
        topic_key: kms.IKey | None,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        definition = load_definition(asl_path, {*functions, resources.TOPIC_PLACEHOLDER})
        # Every execution ends: the definition's own bound, else the project's.
        definition.setdefault("TimeoutSeconds", resources.EXECUTION_TIMEOUT_SECONDS)

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"{resources.STATE_MACHINE_NAME}: invoke its functions, notify",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokePipelineFunctions",
                actions=["lambda:InvokeFunction"],
                resources=[fn.function_arn for fn in functions.values()],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishNotifications", actions=["sns:Publish"], resources=[topic.topic_arn]
            )
        )
        if topic_key is not None:  # publishing to an encrypted topic uses its key
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="EncryptNotifications",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[topic_key.key_arn],
                )
            )

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # /aws/vendedlogs/ keeps the account's CloudWatch Logs resource policy small.
            log_group_name=f"/aws/vendedlogs/states/{resources.STATE_MACHINE_NAME}",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        substitutions = {name: fn.function_arn for name, fn in functions.items()}
        substitutions[resources.TOPIC_PLACEHOLDER] = topic.topic_arn
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=resources.STATE_MACHINE_NAME,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(
                json.dumps(definition, separators=(",", ":"))
            ),
            definition_substitutions=substitutions,
            role=self.role,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
            timeout=Duration.seconds(definition["TimeoutSeconds"]),
        )
        nag.acknowledge(
            self.role,
            "IAM5",
            "Step Functions log delivery (logs:CreateLogDelivery, GetLogDelivery, "
            "UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, "
            "DescribeResourcePolicies, DescribeLogGroups) and X-Ray (PutTraceSegments, "
            "PutTelemetryRecords, GetSamplingRules, GetSamplingTargets) have no resource-level "
            "permissions, so IAM requires Resource '*'",
            applies_to=["Resource::*"],
        )
