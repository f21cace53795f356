"""Storage: the data and artifact bucket, and the bucket that receives its access logs."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import nag
from shared import resources


def secure_bucket(scope: Construct, construct_id: str, **props: object) -> s3.Bucket:
    """A bucket with the defaults every bucket here shares: private, encrypted, TLS only."""
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        **props,  # type: ignore[arg-type]
    )


class Storage(Construct):
    """`s3://sfn-mlops-<account>-<region>`: raw data under data/, run outputs under runs/.

    Versioned (a re-uploaded data file is a new version, hence a new execution name); every
    object change goes to EventBridge (the data trigger); run artifacts move to cheaper
    tiers as they age, but are kept by default: the champion model's artifact lives there.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, artifact_expiration_days: int | None
    ) -> None:
        super().__init__(scope, construct_id)

        self.access_logs = secure_bucket(
            self,
            "AccessLogs",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(365))],
        )
        nag.acknowledge(
            self.access_logs,
            "S1",
            "this bucket is the server-access-log destination of the data bucket; logging "
            "its own access would log into itself",
        )

        self.bucket = secure_bucket(
            self,
            "Bucket",
            bucket_name=resources.bucket_name(Aws.ACCOUNT_ID, Aws.REGION),
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data-bucket/",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=self._lifecycle(artifact_expiration_days),
        )
        # EventBridge delivery as a plain bucket property: `event_bridge_enabled=True` would
        # add a custom-resource Lambda (and its managed policy) to set the same flag.
        cfn_bucket = self.bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )

    @staticmethod
    def _lifecycle(artifact_expiration_days: int | None) -> list[s3.LifecycleRule]:
        runs = s3.LifecycleRule(
            id="tier-run-artifacts",
            prefix=resources.ARTIFACTS_PREFIX,
            transitions=[
                s3.Transition(
                    storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                    transition_after=Duration.days(30),
                ),
                # Instant retrieval: SageMaker can still read an old champion's model.tar.gz.
                s3.Transition(
                    storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                    transition_after=Duration.days(90),
                ),
            ],
            expiration=Duration.days(artifact_expiration_days)
            if artifact_expiration_days
            else None,
        )
        versions = s3.LifecycleRule(
            id="expire-old-versions",
            noncurrent_version_expiration=Duration.days(30),
            noncurrent_versions_to_retain=3,
            abort_incomplete_multipart_upload_after=Duration.days(7),
        )
        # Spot checkpoints are needed only while their training job (or a redrive of its
        # execution) can still resume from them; after that they are storage cost.
        checkpoints = s3.LifecycleRule(
            id="expire-training-checkpoints",
            prefix=resources.CHECKPOINTS_PREFIX,
            expiration=Duration.days(resources.CHECKPOINT_EXPIRY_DAYS),
        )
        return [runs, checkpoints, versions]
