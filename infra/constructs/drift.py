"""Model monitoring: the drift check's schedule, its job's role, the drift alarm, and the
alarm's state change into the trigger (one retraining per cooldown window).

EventBridge rate (config/pipeline.yaml monitoring.schedule_minutes) -> functions/monitor,
which starts the drift job (the project's container, `python -m sfn_container drift`) as
the drift role; the job publishes DriftedFeatures, whose alarm's "CloudWatch Alarm State
Change" into ALARM reaches functions/trigger (cooldown and dedup there).
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import nag
from infra.permissions import Scope, drift_job_grants
from shared import resources


class DriftMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        grants: Scope,
        drift_role: iam.Role,
        repository_arn: str,
        monitor_function: lambda_.Function,
        trigger_function: lambda_.Function,
        endpoint_name: str,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        config = resources.monitoring()
        stack = Stack.of(self)
        statements = [
            iam.PolicyStatement(
                actions=g.actions, resources=g.resources, conditions=g.conditions or None
            )
            for g in drift_job_grants(grants)
        ]
        # what any SageMaker job needs to run at all: pull its image, write its logs
        statements += [
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                         "ecr:BatchCheckLayerAvailability"],
                resources=[repository_arn],
            ),
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                         "logs:DescribeLogStreams"],
                resources=[stack.format_arn(
                    service="logs", resource="log-group",
                    resource_name="/aws/sagemaker/ProcessingJobs*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )],
            ),
        ]  # fmt: skip
        policy = iam.Policy(self, "DriftJobPolicy", statements=statements)
        policy.attach_to_role(drift_role)
        reasons: dict[str, list[str]] = {
            "Resource::*": ["ecr:GetAuthorizationToken (to pull the image) has no resource-level "
                            "permissions"],
        }  # fmt: skip
        logs = stack.resolve(statements[-1].resources[0])
        reasons[f"Resource::{nag.render(logs)}"] = ["a processing job's log streams are per job"]
        for grant in drift_job_grants(grants):
            for resource in grant.resources:
                resolved = stack.resolve(resource)
                if "*" in json.dumps(resolved):
                    finding = f"Resource::{nag.render(resolved)}"
                    reasons.setdefault(finding, []).append(
                        f"{', '.join(grant.actions)}: {grant.why_wildcard}"
                    )
        for finding, why in reasons.items():
            nag.acknowledge(policy, "IAM5", "drift job: " + "; ".join(why), applies_to=[finding])
        self.drift_role = drift_role

        self.schedule = events.Rule(
            self,
            "Schedule",
            rule_name=resources.DRIFT_SCHEDULE_RULE,
            description="The drift check of the production endpoint's captured traffic",
            schedule=events.Schedule.rate(Duration.minutes(config.schedule_minutes)),
            targets=[
                targets.LambdaFunction(
                    monitor_function,
                    dead_letter_queue=dead_letters,
                    max_event_age=Duration.hours(1),
                    retry_attempts=2,
                )
            ],
        )
        alarm = config.alarm(endpoint_name)
        self.alarm = cloudwatch.Alarm(
            self,
            "DriftAlarm",
            alarm_name=alarm["AlarmName"],
            alarm_description=alarm["AlarmDescription"],
            metric=cloudwatch.Metric(
                namespace=alarm["Namespace"],
                metric_name=alarm["MetricName"],
                dimensions_map={d["Name"]: d["Value"] for d in alarm["Dimensions"]},
                statistic=alarm["Statistic"],
                period=Duration.seconds(alarm["Period"]),
            ),
            threshold=alarm["Threshold"],
            evaluation_periods=alarm["EvaluationPeriods"],
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        pattern = resources.drift_alarm_event_pattern(self.alarm.alarm_arn)
        self.alarm_rule = events.Rule(
            self,
            "AlarmToRetraining",
            rule_name=resources.DRIFT_ALARM_RULE,
            description="The drift alarm in ALARM starts one retraining (cooldown: trigger)",
            event_pattern=events.EventPattern(
                source=pattern["source"],
                detail_type=pattern["detail-type"],
                resources=pattern["resources"],
                detail=pattern["detail"],
            ),
            targets=[
                targets.LambdaFunction(
                    trigger_function,
                    dead_letter_queue=dead_letters,
                    max_event_age=Duration.hours(2),
                    retry_attempts=8,
                )
            ],
        )
