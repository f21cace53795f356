"""The pipeline stack: everything the state machine needs to run on AWS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Stack
from constructs import Construct

from infra.constructs.coordination import Coordination
from infra.constructs.drift import DriftMonitoring
from infra.constructs.functions import GrantScope, PipelineFunctions
from infra.constructs.monitoring import Monitoring
from infra.constructs.notifications import Notifications
from infra.constructs.repository import ModelRepository
from infra.constructs.sagemaker import SageMakerResources
from infra.constructs.state_machine import PipelineStateMachine
from infra.constructs.storage import Storage
from infra.constructs.triggers import Triggers
from infra.settings import DeploySettings
from shared import resources


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        asl_path: Path = resources.ASL_PATH,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        storage = Storage(
            self, "Storage", artifact_expiration_days=settings.artifact_expiration_days
        )
        repository = ModelRepository(self, "Model").repository
        notifications = Notifications(self, "Notifications", email=settings.notification_email)
        sagemaker = SageMakerResources(
            self,
            "SageMaker",
            bucket=storage.bucket,
            repository=repository,
            topic=notifications.topic,
        )
        # The state machine's ARN from its fixed name: the trigger function needs it, and the
        # state machine needs the other functions' ARNs; naming breaks the cycle.
        state_machine_arn = self.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=resources.STATE_MACHINE_NAME,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        coordination = Coordination(self, "Coordination")
        environment = {
            "COORDINATION_TABLE": coordination.table.table_name,
            "ARTIFACT_BUCKET": storage.bucket.bucket_name,
            "ARTIFACTS_PREFIX": resources.ARTIFACTS_PREFIX,
            "DATA_PREFIX": resources.DATA_PREFIX,
            "SAGEMAKER_ROLE_ARN": sagemaker.role.role_arn,
            "STATE_MACHINE_ARN": state_machine_arn,
            "ECR_REPOSITORY": repository.repository_name,
            "MODEL_PACKAGE_GROUP": sagemaker.model_package_group_name,
            "PIPELINE_DEFAULTS": resources.pipeline_defaults_env(),
            "DEFAULT_IMAGE_URI": repository.repository_uri_for_tag(settings.image_tag),
            "ENDPOINT_ALARM_NAMES": ",".join(alarm.alarm_name for alarm in sagemaker.alarms),
            "DATA_CAPTURE_PERCENT": str(resources.monitoring().capture_sampling_percentage),
            **resources.monitoring().function_values(
                sagemaker.endpoint_name, sagemaker.drift_role.role_arn
            ),
            "STAGING_ALARM_NAMES": ",".join(a.alarm_name for a in sagemaker.staging_alarms),
            "NOTIFICATION_TOPIC_ARN": notifications.topic.topic_arn,
        }
        grant_scope = GrantScope(
            construct=self,
            bucket=storage.bucket,
            state_machine_arn=state_machine_arn,
            sagemaker=sagemaker,
            table=coordination.table,
            topic=notifications.topic,
        )
        functions = PipelineFunctions(
            self,
            "Functions",
            build_dir=settings.lambda_build_dir,
            environment=environment,
            grants=grant_scope,
            log_retention=settings.log_retention,
        )
        pipeline = PipelineStateMachine(
            self,
            "Pipeline",
            asl_path=asl_path,
            functions=functions.workflow_functions,
            topic=notifications.topic,
            topic_key=notifications.key,
            log_retention=settings.log_retention,
        )
        triggers = Triggers(
            self,
            "Triggers",
            trigger_function=functions.functions["trigger"],
            lock_events_function=functions.functions["lock-events"],
            state_machine=pipeline.state_machine,
            repository_name=repository.repository_name,
            bucket_name=storage.bucket.bucket_name,
            model_package_group=sagemaker.model_package_group_name,
            topic=notifications.topic,
            schedule_expression=settings.schedule_expression,
            schedule_enabled=settings.schedule_enabled,
        )
        notifications.notify_unsuccessful_executions(
            state_machine_arn,
            function=functions.functions["notify"],
            role=functions.roles["notify"],
            dead_letters=triggers.dead_letters,
        )
        self.drift = DriftMonitoring(
            self,
            "DriftMonitoring",
            grants=grant_scope,
            drift_role=sagemaker.drift_role,
            repository_arn=repository.repository_arn,
            monitor_function=functions.functions["monitor"],
            trigger_function=functions.functions["trigger"],
            endpoint_name=sagemaker.endpoint_name,
            dead_letters=triggers.dead_letters,
        )
        Monitoring(
            self,
            "Monitoring",
            state_machine=pipeline.state_machine,
            functions=functions.functions,
            endpoint_name=sagemaker.endpoint_name,
            endpoint_alarms=sagemaker.alarms,
            dead_letters=triggers.dead_letters,
            topic=notifications.topic,
        )

        self.storage, self.repository, self.functions = storage, repository, functions
        self.state_machine, self.triggers, self.sagemaker = pipeline, triggers, sagemaker
        self.coordination = coordination
        for name, value, description in (
            ("BucketName", storage.bucket.bucket_name, "data (data/) and artifacts (runs/)"),
            ("RepositoryUri", repository.repository_uri, "push the model image here"),
            ("StateMachineArn", pipeline.state_machine.state_machine_arn, "the pipeline"),
            ("TopicArn", notifications.topic.topic_arn, "execution and alarm notifications"),
            ("DeadLetterQueueUrl", triggers.dead_letters.queue_url, "undeliverable triggers"),
        ):
            CfnOutput(self, name, value=value, description=description)
