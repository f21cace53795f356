"""Notifications: one encrypted SNS topic for execution outcomes, deployments and alarms, and
the EventBridge rule that sends every unsuccessful execution of the pipeline to the notify
function, which publishes it to the topic naming the state that failed.

Failure notifications come from the execution status change event, not from a state in the
workflow, so a failed state fails the execution where it happened and Redrive restarts there.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.triggers import MAX_EVENT_AGE, RETRY_ATTEMPTS, event_pattern
from shared import resources


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

    def notify_unsuccessful_executions(
        self,
        state_machine_arn: str,
        *,
        function: lambda_.IFunction,
        role: iam.IRole,
        dead_letters: sqs.IQueue,
    ) -> events.Rule:
        """FAILED / TIMED_OUT / ABORTED executions of `state_machine_arn` -> `function`
        (functions/notify), which names the failed state (the event does not) and publishes.

        Delivery: EventBridge retries the invocation (RETRY_ATTEMPTS within MAX_EVENT_AGE)
        and then dead-letters the event into `dead_letters` (which alarms on the topic); a
        function error after delivery is retried twice by Lambda's async invoke. The function
        publishes even when it cannot read the history, so a notification is lost only if
        SNS itself keeps refusing it, and then the function's Errors metric shows it.
        """
        rule = events.Rule(
            self,
            "ExecutionFailed",
            rule_name=resources.EXECUTION_STATUS_RULE,
            description="Unsuccessful pipeline executions -> the notification function "
            "(names the failed state) -> the topic",
            event_pattern=event_pattern(
                resources.execution_status_event_pattern(state_machine_arn)
            ),
            targets=[
                targets.LambdaFunction(
                    function,
                    dead_letter_queue=dead_letters,
                    max_event_age=MAX_EVENT_AGE,
                    retry_attempts=RETRY_ATTEMPTS,
                )
            ],
        )
        # Publishing to the encrypted topic uses its key: the notify role may, through SNS
        # only (a key policy statement, so its own policy keeps just its two grants).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowNotifyFunctionToPublish",
                principals=[iam.ArnPrincipal(role.role_arn)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" means this key
                conditions={
                    "StringEquals": {"kms:ViaService": f"sns.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )
        return rule
