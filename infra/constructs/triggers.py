"""Triggers: EventBridge rules (ECR image push, new data under data/, an optional schedule)
that start the pipeline, and the rule that releases a closed execution's deployment locks;
with retries and one encrypted dead-letter queue that alarms."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import nag
from shared import resources

#: EventBridge keeps retrying a failed delivery this long / this often, then dead-letters it.
MAX_EVENT_AGE = Duration.hours(2)
RETRY_ATTEMPTS = 8


def event_pattern(pattern: dict[str, Any]) -> events.EventPattern:
    """A shared.resources pattern dict (EventBridge JSON keys) as a CDK EventPattern."""
    known = {"source", "detail-type", "detail"}
    unknown = set(pattern) - known
    if unknown:
        raise ValueError(f"event pattern keys {sorted(unknown)} are not mapped")
    return events.EventPattern(
        source=pattern.get("source"),
        detail_type=pattern.get("detail-type"),
        detail=pattern.get("detail"),
    )


class Triggers(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        trigger_function: lambda_.Function,
        lock_events_function: lambda_.Function,
        state_machine: sfn.IStateMachine,
        repository_name: str,
        bucket_name: str,
        model_package_group: str,
        topic: sns.ITopic,
        schedule_expression: str,
        schedule_enabled: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        nag.acknowledge(
            self.dead_letters,
            "SQS3",
            "this queue is itself the dead-letter queue of the trigger rules, of the "
            "failure-notification rule and of the trigger function's async invocations; it "
            "alarms on depth instead of chaining",
        )
        # A function error after EventBridge delivered: Lambda retries twice, then here.
        trigger_function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dead_letters),
        )

        def lambda_target() -> targets.LambdaFunction:
            return targets.LambdaFunction(
                trigger_function,
                dead_letter_queue=self.dead_letters,
                max_event_age=MAX_EVENT_AGE,
                retry_attempts=RETRY_ATTEMPTS,
            )

        self.ecr_push = events.Rule(
            self,
            "EcrPush",
            rule_name=resources.ECR_PUSH_RULE,
            description="A pushed model image starts a retraining run",
            event_pattern=event_pattern(resources.ecr_push_event_pattern(repository_name)),
            targets=[lambda_target()],
        )
        # A registry approval (Approved only) of this project's group deploys that package.
        self.registry_approval = events.Rule(
            self,
            "RegistryApproval",
            rule_name=resources.REGISTRY_APPROVAL_RULE,
            description="An Approved model package of this project starts its deployment",
            event_pattern=event_pattern(
                resources.registry_approval_event_pattern(model_package_group)
            ),
            targets=[lambda_target()],
        )
        # The debounce: new-data events wait in a queue; the trigger's event source mapping
        # hands them over in one batch per window, so a burst of uploads is one run.
        debounce = resources.data_trigger()
        self.data_events = sqs.Queue(
            self,
            "DataEvents",
            queue_name=resources.DATA_EVENTS_QUEUE,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # Lambda's guidance for SQS sources: >= 6x the function timeout plus the window
            visibility_timeout=Duration.seconds(
                6 * trigger_function.timeout.to_seconds() + debounce.debounce_seconds
            )
            if trigger_function.timeout
            else Duration.minutes(15),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.dead_letters),
        )
        self.new_data = events.Rule(
            self,
            "NewData",
            rule_name=resources.S3_DATA_RULE,
            description=f"New objects under {resources.DATA_PREFIX} start a retraining run "
            "(batched for the debounce window)",
            event_pattern=event_pattern(resources.s3_data_event_pattern(bucket_name)),
            targets=[
                targets.SqsQueue(
                    self.data_events,
                    dead_letter_queue=self.dead_letters,
                    max_event_age=MAX_EVENT_AGE,
                    retry_attempts=RETRY_ATTEMPTS,
                )
            ],
        )
        trigger_function.add_event_source(
            event_sources.SqsEventSource(
                self.data_events,
                batch_size=debounce.max_batch_size,
                max_batching_window=Duration.seconds(debounce.debounce_seconds),
            )
        )
        # A failed, timed-out or stopped execution never reaches ReleaseDeployLock (there is
        # no catch-all): its status-change event releases what it holds.
        self.execution_closed = events.Rule(
            self,
            "ExecutionClosed",
            rule_name=resources.EXECUTION_CLOSED_RULE,
            description="A pipeline execution that failed, timed out or was stopped: "
            "release its deployment locks",
            event_pattern=event_pattern(
                resources.execution_closed_event_pattern(state_machine.state_machine_arn)
            ),
            targets=[
                targets.LambdaFunction(
                    lock_events_function,
                    dead_letter_queue=self.dead_letters,
                    max_event_age=MAX_EVENT_AGE,
                    retry_attempts=RETRY_ATTEMPTS,
                )
            ],
        )
        # Periodic retraining on the data already in the bucket: off unless asked for.
        self.schedule = events.Rule(
            self,
            "Schedule",
            rule_name=resources.SCHEDULE_RULE,
            description="Scheduled retraining (enable with context schedule_enabled=true)",
            schedule=events.Schedule.expression(schedule_expression),
            enabled=schedule_enabled,
            targets=[
                targets.SfnStateMachine(
                    state_machine,
                    input=events.RuleTargetInput.from_object({"tags": {"trigger": "schedule"}}),
                    dead_letter_queue=self.dead_letters,
                    max_event_age=MAX_EVENT_AGE,
                    retry_attempts=RETRY_ATTEMPTS,
                )
            ],
        )

        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLettersAlarm",
            alarm_name=f"{resources.PROJECT}-trigger-dead-letters",
            alarm_description="A trigger event could not start the pipeline, or a failure "
            "notification could not be delivered (see the DLQ)",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dead_letter_alarm.add_alarm_action(cw_actions.SnsAction(topic))
