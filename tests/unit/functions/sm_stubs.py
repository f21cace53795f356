"""botocore Stubber helpers for what moto does not do: jobs InProgress/Failed/Stopped,
ResourceInUse on a duplicate name, UpdateEndpoint, endpoint states, throttling."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.stub import Stubber
from fn_support import REGION, ROLE

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.session.Session().client(service, region_name=REGION)
    return client, Stubber(client)


def training_job(name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    job: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Completed" if status == "Completed" else "Training",
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img"},
        "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 30, "InstanceType": "ml.m5.large"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": NOW,
    }
    if reason:
        job["FailureReason"] = reason
    return job


def processing_job(
    name: str, status: str, reason: str | None = None, inputs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "ProcessingJobName": name,
        "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:processing-job/{name}",
        "ProcessingJobStatus": status,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
            }
        },
        "AppSpecification": {"ImageUri": "img"},
        "RoleArn": ROLE,
        "CreationTime": NOW,
    }
    if reason:
        job["FailureReason"] = reason
    if inputs is not None:
        job["ProcessingInputs"] = inputs
    return job


def endpoint(
    name: str,
    status: str,
    config: str,
    reason: str | None = None,
    pending_config: str | None = None,
) -> dict[str, Any]:
    ep: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    if reason:
        ep["FailureReason"] = reason
    if pending_config:
        ep["PendingDeploymentSummary"] = {"EndpointConfigName": pending_config}
    return ep


def not_found(stub: Stubber, operation: str) -> None:
    """SageMaker answers a missing job/endpoint/model with ValidationException."""
    stub.add_client_error(operation, "ValidationException", "Could not find it", 400)
