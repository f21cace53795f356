"""SageMaker: the role jobs and endpoints run as, the model package group, and the endpoint
alarms that a blue/green update rolls back on."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra import nag
from shared import resources

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"


def sagemaker_arn(scope: Construct, resource_type: str, name: str = "*") -> str:
    """arn:aws:sagemaker:<region>:<account>:<resource_type>/<name>."""
    stack = Stack.of(scope)
    return stack.format_arn(service="sagemaker", resource=resource_type, resource_name=name)


class SageMakerResources(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        repository: ecr.IRepository,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        defaults = resources.pipeline_defaults()
        self.model_package_group_name: str = defaults["model_package_group"]
        self.endpoint_name: str = defaults["endpoint_name"]

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal(SAGEMAKER_SERVICE),
            description="Runs the pipeline's processing and training jobs and its endpoint",
        )
        self._grant_execution(bucket, repository)
        # The drift check's job runs as its own role (granted in constructs/drift.py).
        self.drift_role = iam.Role(
            self,
            "DriftJobRole",
            role_name=resources.DRIFT_JOB_ROLE,
            assumed_by=iam.ServicePrincipal(SAGEMAKER_SERVICE),
            description="Runs the drift check: reads capture and baselines, writes reports "
            "and metrics",
        )

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.model_package_group_name,
            model_package_group_description=f"{resources.PROJECT}: models the pipeline registers",
        )

        self.staging_endpoint_name: str | None = defaults.get("staging_endpoint_name")
        #: production's rollback alarms (ENDPOINT_ALARM_NAMES), then staging's (if any)
        self.alarms = self._endpoint_alarms(
            topic, "", self.endpoint_name, resources.ENDPOINT_ALARM_NAMES
        )
        self.staging_alarms = (
            self._endpoint_alarms(
                topic, "Staging", self.staging_endpoint_name, resources.STAGING_ALARM_NAMES
            )
            if self.staging_endpoint_name
            else []
        )
        # Deployment guardrails read the rollback alarms as the endpoint's execution role.
        self.policy.add_statements(self.describe_alarms_statement())

    # --- the execution role -----------------------------------------------------------------
    def _grant_execution(self, bucket: s3.IBucket, repository: ecr.IRepository) -> None:
        data = resources.DATA_PREFIX
        runs = resources.ARTIFACTS_PREFIX
        checkpoints = resources.CHECKPOINTS_PREFIX
        statements = [
            iam.PolicyStatement(
                sid="ReadInputs",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{data}*"), bucket.arn_for_objects(f"{runs}*")],
            ),
            iam.PolicyStatement(
                sid="WriteRunOutputs",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{runs}*")],
            ),
            # Spot training: SageMaker uploads /opt/ml/checkpoints to the job's
            # CheckpointConfig prefix while it runs and copies it back (list + get) when it
            # restarts an interrupted job. No delete: the bucket's lifecycle expires them.
            iam.PolicyStatement(
                sid="SyncTrainingCheckpoints",
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{checkpoints}*")],
            ),
            iam.PolicyStatement(
                sid="ListInputPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={
                    "StringLike": {"s3:prefix": [f"{data}*", f"{runs}*", f"{checkpoints}*"]}
                },
            ),
            iam.PolicyStatement(
                sid="BucketLocation",
                actions=["s3:GetBucketLocation"],
                resources=[bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="PullModelImage",
                actions=[
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                resources=[repository.repository_arn],
            ),
            iam.PolicyStatement(
                sid="EcrLogin",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="JobAndEndpointLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    Stack.of(self).format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            iam.PolicyStatement(
                sid="SageMakerMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            ),
        ]
        policy = iam.Policy(self, "ExecutionPolicy", statements=statements)
        policy.attach_to_role(self.role)
        self.policy = policy
        nag.acknowledge(
            policy,
            "IAM5",
            "SageMaker jobs read raw data under data/, read/write run outputs under runs/ and "
            "sync Spot training checkpoints under checkpoints/: object names are per "
            "execution, so the grant is the prefix; ListBucket is further limited by an "
            "s3:prefix condition",
            applies_to=[
                f"Resource::{nag.arn_of(bucket)}/{data}*",
                f"Resource::{nag.arn_of(bucket)}/{runs}*",
                f"Resource::{nag.arn_of(bucket)}/{checkpoints}*",
            ],
        )
        nag.acknowledge(
            policy,
            "IAM5",
            "ecr:GetAuthorizationToken (to pull the model image) and cloudwatch:PutMetricData "
            "(job metrics, limited to /aws/sagemaker/* namespaces by condition) have no "
            "resource-level permissions",
            applies_to=["Resource::*"],
        )
        nag.acknowledge(
            policy,
            "IAM5",
            "SageMaker creates one log group per job type under /aws/sagemaker/ "
            "(ProcessingJobs, TrainingJobs, Endpoints/<name>) with per-job streams",
            applies_to=[
                "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
                "log-group:/aws/sagemaker/*"
            ],
        )

    def pass_role_statement(self) -> iam.PolicyStatement:
        """iam:PassRole for this role only, and only to SageMaker (for job/model creators)."""
        return iam.PolicyStatement(
            sid="PassSageMakerExecutionRole",
            actions=["iam:PassRole"],
            resources=[self.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
        )

    def describe_alarms_statement(self) -> iam.PolicyStatement:
        """cloudwatch:DescribeAlarms on the endpoint's rollback alarms only."""
        return iam.PolicyStatement(
            sid="ReadRollbackAlarms",
            actions=["cloudwatch:DescribeAlarms"],
            resources=[alarm.alarm_arn for alarm in (*self.alarms, *self.staging_alarms)],
        )

    # --- endpoint alarms ----------------------------------------------------------------------
    def _endpoint_alarms(
        self, topic: sns.ITopic, prefix: str, endpoint_name: str, names: tuple[str, ...]
    ) -> list[cloudwatch.Alarm]:
        """One endpoint's rollback alarms (5xx, p99 latency); `prefix` tells their ids apart."""
        dimensions = {
            "EndpointName": endpoint_name,
            "VariantName": resources.ENDPOINT_VARIANT_NAME,
        }
        five_xx_name, latency_name = names
        five_xx = cloudwatch.Alarm(
            self,
            f"{prefix}Endpoint5xx",
            alarm_name=five_xx_name,
            alarm_description="Endpoint answers 5xx: a blue/green update rolls back on this",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="Invocation5XXErrors",
                dimensions_map=dimensions,
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        latency = cloudwatch.Alarm(
            self,
            f"{prefix}EndpointLatency",
            alarm_name=latency_name,
            alarm_description="Endpoint p99 model latency above 1 s: blue/green rolls back on this",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="ModelLatency",  # microseconds
                dimensions_map=dimensions,
                statistic="p99",
                period=Duration.minutes(1),
            ),
            threshold=1_000_000,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (five_xx, latency):
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return [five_xx, latency]
