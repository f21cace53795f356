"""Notifications: one encrypted SNS topic for execution outcomes, deployments and alarms, and
the EventBridge rule that publishes every unsuccessful execution of the pipeline to it.

Failure notifications come from the execution status change event, not from a state in the
workflow, so a failed state fails the execution where it happened and Redrive restarts there.
"""

from __future__ import annotations

import jsii
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from shared import resources


@jsii.implements(events.IRuleTarget)
class _TopicTarget:
    """The topic as a rule target, without the grants CDK's SnsTopic target adds (an
    unconditioned topic policy and key grant for every rule): the caller scopes them."""

    def __init__(self, topic: sns.ITopic, message: events.RuleTargetInput) -> None:
        self._topic, self._message = topic, message

    def bind(self, _rule: events.IRule, _id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._topic.topic_arn, input=self._message)


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "TopicKey",
            description=f"{resources.PROJECT}: encrypts the notification topic",
            enable_key_rotation=True,
            rotation_period=Duration.days(365),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch alarms publish to the topic, so they must be able to use its key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=resources.FAILURE_TOPIC,
            display_name="sfn-mlops pipeline",
            master_key=self.key,
            enforce_ssl=True,
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

    def notify_unsuccessful_executions(self, state_machine_arn: str) -> events.Rule:
        """FAILED / TIMED_OUT / ABORTED executions of `state_machine_arn` -> the topic, as the
        message of shared.resources.notification_template (an input transformer)."""
        fields = {
            name: events.EventField.from_path(path)
            for name, path in resources.NOTIFICATION_PATHS.items()
        }

        def fill(text: str) -> str:
            for name, field in fields.items():
                text = text.replace(f"<{name}>", field)
            return text

        message = {k: fill(v) for k, v in resources.notification_template().items()}
        pattern = resources.execution_status_event_pattern(state_machine_arn)
        rule = events.Rule(
            self,
            "ExecutionFailed",
            rule_name=resources.EXECUTION_STATUS_RULE,
            description="Unsuccessful pipeline executions -> notification topic (redrive them)",
            event_pattern=events.EventPattern(
                source=pattern["source"],
                detail_type=pattern["detail-type"],
                detail=pattern["detail"],
            ),
        )
        rule.add_target(_TopicTarget(self.topic, events.RuleTargetInput.from_object(message)))
        # EventBridge may publish to the topic, and use its key, on behalf of this rule only
        # (ARN from its fixed name: a reference would make key -> rule -> ... -> topic a cycle)
        rule_arn = Stack.of(self).format_arn(
            service="events", resource="rule", resource_name=resources.EXECUTION_STATUS_RULE
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowExecutionStatusRuleToPublish",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"ArnEquals": {"aws:SourceArn": rule_arn}},
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowExecutionStatusRuleToPublish",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
                conditions={"ArnEquals": {"aws:SourceArn": rule_arn}},
            )
        )
        return rule
