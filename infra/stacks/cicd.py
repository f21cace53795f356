"""CI/CD: CodePipeline (GitHub through a CodeStar connection) -> one CodeBuild project that
runs buildspec.yml: `make test`, build the image from container/, deploy the stacks, push
the image tagged with the commit SHA and `latest` (the push is what starts a pipeline run)."""

from __future__ import annotations

import shlex
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as cpactions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import nag
from infra.constructs.storage import secure_bucket
from infra.settings import DeploySettings
from shared import resources

BOOTSTRAP_ROLES = ("deploy", "file-publishing", "image-publishing", "lookup")


class CicdStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        assert settings.github_connection_arn is not None
        owner, repo = settings.github_owner_and_name

        access_logs = secure_bucket(
            self,
            "AccessLogs",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(365))],
        )
        nag.acknowledge(
            access_logs,
            "S1",
            "this bucket is the server-access-log destination of the pipeline artifact "
            "bucket; logging its own access would log into itself",
        )
        artifacts = secure_bucket(
            self,
            "Artifacts",
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="artifacts/",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-build-artifacts", expiration=Duration.days(30))
            ],
        )
        key = kms.Key(
            self,
            "BuildKey",
            description=f"{resources.PROJECT}: encrypts CodeBuild output and cache",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        build_logs = logs.LogGroup(
            self,
            "BuildLogs",
            log_group_name=f"/aws/codebuild/{resources.PROJECT}-build",
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )

        repository_arn = self.format_arn(
            service="ecr", resource="repository", resource_name=resources.ECR_REPOSITORY
        )
        repository_uri = (
            f"{Aws.ACCOUNT_ID}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}/{resources.ECR_REPOSITORY}"
        )
        variables = {
            "ECR_REPOSITORY_URI": repository_uri,
            "CDK_CONTEXT_ARGS": shlex.join(settings.context_args()),
        }
        self.project = codebuild.PipelineProject(
            self,
            "Build",
            project_name=f"{resources.PROJECT}-build",
            description="make test; docker build container/; make deploy; docker push",
            build_spec=codebuild.BuildSpec.from_source_filename("buildspec.yml"),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.MEDIUM,
                privileged=True,  # docker build of the model image
            ),
            environment_variables={
                k: codebuild.BuildEnvironmentVariable(value=v) for k, v in variables.items()
            },
            encryption_key=key,
            cache=codebuild.Cache.bucket(artifacts, prefix="codebuild-cache"),
            timeout=Duration.minutes(60),
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=build_logs)
            ),
        )
        role = self.project.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PushModelImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:InitiateLayerUpload",
                    "ecr:UploadLayerPart",
                    "ecr:CompleteLayerUpload",
                    "ecr:PutImage",
                ],
                resources=[repository_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]
            )
        )
        # `cdk deploy` works through the bootstrap roles (CloudFormation runs as its own
        # execution role); the build itself gets no CloudFormation or IAM rights.
        qualifier = settings.cdk_bootstrap_qualifier
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole"],
                resources=[
                    f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/"
                    f"cdk-{qualifier}-{name}-role-{Aws.ACCOUNT_ID}-{Aws.REGION}"
                    for name in BOOTSTRAP_ROLES
                ],
            )
        )

        source_output = codepipeline.Artifact("Source")
        source = cpactions.CodeStarConnectionsSourceAction(
            action_name="GitHub",
            connection_arn=settings.github_connection_arn,
            owner=owner,
            repo=repo,
            branch=settings.github_branch,
            output=source_output,
            trigger_on_push=True,
        )
        build = cpactions.CodeBuildAction(
            action_name="TestBuildDeploy",
            project=self.project,
            input=source_output,
            environment_variables={
                "COMMIT_SHA": codebuild.BuildEnvironmentVariable(value=source.variables.commit_id)
            },
        )
        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=f"{resources.PROJECT}-cicd",
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=artifacts,
            restart_execution_on_update=True,
            stages=[
                codepipeline.StageProps(stage_name="Source", actions=[source]),
                codepipeline.StageProps(stage_name="Build", actions=[build]),
            ],
        )
        self._acknowledge_generated_grants(artifacts, role)
        nag.acknowledge(
            self.project,
            "CB3",
            "privileged mode is what lets CodeBuild run the Docker daemon that builds the "
            "model image from container/ (docker build/push in buildspec.yml)",
        )
        nag.acknowledge(
            role,
            "IAM5",
            "ecr:GetAuthorizationToken (docker login to ECR) has no resource-level "
            "permissions, so IAM requires Resource '*'",
            applies_to=["Resource::*"],
        )

    def _acknowledge_generated_grants(self, artifacts: s3.Bucket, build_role: iam.IRole) -> None:
        """The grants CDK writes for CodePipeline/CodeBuild on their own artifact bucket, logs,
        report groups and key: each is scoped to that one resource, with CDK's action groups."""
        bucket_actions = [
            "Action::s3:Abort*",
            "Action::s3:DeleteObject*",
            "Action::s3:GetBucket*",
            "Action::s3:GetObject*",
            "Action::s3:List*",
            f"Resource::{nag.arn_of(artifacts)}/*",
        ]
        reason = (
            "CDK's artifact-bucket grant for CodePipeline: read/write of pipeline artifacts "
            "(source zip, build cache) in this stack's own artifact bucket only"
        )
        pipeline_roles = [
            self.pipeline.role,
            self.pipeline.node.find_child("Source")
            .node.find_child("GitHub")
            .node.find_child("CodePipelineActionRole"),
        ]
        for role in [build_role, *pipeline_roles]:
            nag.acknowledge(role, "IAM5", reason, applies_to=bucket_actions)
        project_id = self.resolve(self.project.node.default_child.logical_id)  # type: ignore[union-attr]
        nag.acknowledge(
            build_role,
            "IAM5",
            "CodeBuild writes one log stream per build into its project log group and creates "
            "test report groups named <project>-<report> (the pytest JUnit report)",
            applies_to=[
                "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
                f"log-group:/aws/codebuild/<{project_id}>:*",
                "Resource::arn:<AWS::Partition>:codebuild:<AWS::Region>:<AWS::AccountId>:"
                f"report-group/<{project_id}>-*",
            ],
        )
        nag.acknowledge(
            build_role,
            "IAM5",
            "CDK's grant on the build's own KMS key (encrypt/decrypt of build output and "
            "cache): GenerateDataKey*/ReEncrypt* are the data-key variants on that one key",
            applies_to=["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"],
        )
