"""Model Registry: one model package per execution, in the configured group.

Idempotent: the package carries `CustomerMetadataProperties.execution_name`; a re-run finds
the package of its execution (newest first, within the redrive window) and returns it, and the
create call carries a ClientToken derived from the execution ARN, so AWS itself dedups a
create that is retried after a lost response.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.jobs import baseline_uris
from shared.models import RegisterOutput, RegisterRequest
from shared.observability import logger

#: Redrive is possible within 14 days of an execution closing; executions last at most hours.
LOOKBACK = timedelta(days=15)
MAX_SCANNED = 200
EXECUTION_KEY = "execution_name"
SAMPLE_KEY = "sample_uri"


def client_token(execution_arn: str) -> str:
    """CreateModelPackage ClientToken: 1-36 chars of [a-zA-Z0-9-], one per execution."""
    return hashlib.sha256(execution_arn.encode()).hexdigest()[:36]


def _metadata(request: RegisterRequest) -> dict[str, str]:
    config = request.config
    values = {
        EXECUTION_KEY: request.execution_name,
        "execution_arn": request.execution_arn,
        "image_uri": config.image_uri,
        "raw_data_uri": config.raw_data_uri,
        "data_version": config.tags.get("data_version", ""),
        "git_sha": config.tags.get("git_sha", ""),
        "image_digest": config.tags.get("image_digest", ""),
        "training_job": request.train.job_name,
        "evaluation_job": request.evaluate.job_name,
        "objective_metric": request.gate.metric,
        "challenger_value": f"{request.gate.challenger:.10g}",
        "champion_value": "" if request.gate.champion is None else f"{request.gate.champion:.10g}",
        "gate_passed": str(request.gate.passed).lower(),
        # a registry approval's run smoke-tests and load-checks with these rows
        SAMPLE_KEY: request.preprocess.sample_uri if request.preprocess else "",
    }
    # CustomerMetadataProperties values are 1-256 characters: drop the empty ones.
    return {k: v[:256] for k, v in values.items() if v}


def package_request(request: RegisterRequest, status: str) -> dict[str, Any]:
    config = request.config
    container: dict[str, Any] = {
        "Image": config.image_uri,
        "ModelDataUrl": request.train.model_artifact_uri,
        "Environment": {
            "TARGET_COLUMN": config.target_column,
            "PROBLEM_TYPE": config.problem_type,
        },
    }
    inference: dict[str, Any] = {
        "Containers": [container],
        "SupportedContentTypes": ["text/csv", "application/json"],
        "SupportedResponseMIMETypes": ["application/json", "text/csv"],
    }
    if config.endpoint.instance_type.startswith("ml."):
        inference["SupportedRealtimeInferenceInstanceTypes"] = [config.endpoint.instance_type]
    metadata: dict[str, str] = {"GeneratedBy": request.execution_arn[:1024]}
    if config.tags.get("git_sha"):
        metadata["CommitId"] = config.tags["git_sha"][:1024]
    metadata["Repository"] = config.image_uri[:1024]
    return {
        "ModelPackageGroupName": config.model_package_group,
        "ModelPackageDescription": (
            f"execution {request.execution_name}: {'; '.join(request.gate.reasons)}"
        )[:1000],
        "InferenceSpecification": inference,
        "ModelApprovalStatus": status,
        "MetadataProperties": metadata,
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": request.evaluate.report_uri,
                }
            }
        },
        "DriftCheckBaselines": drift_check_baselines(request.evaluate.report_uri),
        "CustomerMetadataProperties": _metadata(request),
        "ClientToken": client_token(request.execution_arn),
        "Tags": [{"Key": "sfn-mlops:execution", "Value": request.execution_name}],
    }


def drift_check_baselines(report_uri: str) -> dict[str, Any]:
    """The model's data-drift baseline (statistics and constraints of its training split),
    which the scheduled drift check compares the endpoint's captured traffic against."""
    statistics, constraints = baseline_uris(report_uri)
    return {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": statistics},
            "Constraints": {"ContentType": "application/json", "S3Uri": constraints},
        }
    }


def find_package(
    sagemaker: SageMaker, group: str, execution_name: str, now: datetime
) -> dict[str, Any] | None:
    """This execution's package in `group`, if it was registered already."""
    for scanned, summary in enumerate(sagemaker.model_packages(group, now - LOOKBACK)):
        if scanned >= MAX_SCANNED:
            break
        package = sagemaker.describe_model_package(str(summary["ModelPackageArn"]))
        if package.get("CustomerMetadataProperties", {}).get(EXECUTION_KEY) == execution_name:
            return package
    return None


def register(
    request: RegisterRequest, sagemaker: SageMaker, now: datetime | None = None
) -> RegisterOutput:
    group = request.config.model_package_group
    status = request.gate.approval_status
    if sagemaker.ensure_model_package_group(
        group, "sfn-mlops: models trained by the pipeline, one package per execution"
    ):
        logger.info("model package group created", extra={"group": group})
    existing = find_package(sagemaker, group, request.execution_name, now or datetime.now(UTC))
    if existing is not None:
        arn = str(existing["ModelPackageArn"])
        current = existing.get("ModelApprovalStatus", status)
        if request.recheck is not None and request.recheck.changed and current != status:
            # UpdateRegistration: the fresh decision (a newer champion) overrules the first one
            sagemaker.update_model_package_status(arn, status, "; ".join(request.gate.reasons))
            logger.info("model package status updated", extra={"arn": arn, "status": status})
            current = status
        logger.info("model package reused", extra={"arn": arn})
        return RegisterOutput(
            model_package_arn=arn,
            model_package_group=group,
            approval_status=current,
            reused=True,
        )
    arn = sagemaker.create_model_package(package_request(request, status))
    logger.info("model package registered", extra={"arn": arn, "status": status})
    return RegisterOutput(
        model_package_arn=arn, model_package_group=group, approval_status=status, reused=False
    )
