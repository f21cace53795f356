"""Conditional endpoint update of one stage (staging or production): new model + new endpoint
config (names from the execution and the stage, so a re-run reuses them; an old config is
never deleted), then CreateEndpoint if there is none, else a blue/green UpdateEndpoint with
auto-rollback on the stage's CloudWatch alarms. Production shifts traffic as
`deploy_strategy` says (all at once, canary, linear); staging all at once."""

from __future__ import annotations

from typing import Any, Literal

from shared.adapters.dynamodb import CoordinationTable
from shared.adapters.sagemaker import SageMaker
from shared.champion import find_champion
from shared.errors import (
    DeployLockLostError,
    EndpointFailedError,
    InvalidInputError,
    TransientServiceError,
)
from shared.models import DeployOutput, DeployRequest, DeployStrategy
from shared.naming import resource_name
from shared.observability import logger
from shared.resources import CAPTURE_PREFIX, ENDPOINT_VARIANT_NAME
from shared.schedule import endpoint_history, first_poll
from shared.settings import DeploySettings

STAGING_BAKING_SECONDS = 0  # staging: its load check follows; nothing to bake for
BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})


def traffic_routing(strategy: DeployStrategy) -> dict[str, Any]:
    """BlueGreenUpdatePolicy.TrafficRoutingConfiguration for `strategy`."""
    routing: dict[str, Any] = {
        "Type": strategy.type.upper(),
        "WaitIntervalInSeconds": strategy.wait_interval_seconds,
    }
    if strategy.type == "canary":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": strategy.canary_size_percent}
    elif strategy.type == "linear":
        routing["LinearStepSize"] = {
            "Type": "CAPACITY_PERCENT",
            "Value": strategy.linear_step_percent,
        }
    else:
        routing["WaitIntervalInSeconds"] = 0
    return routing


def deployment_config(
    alarm_names: tuple[str, ...], strategy: DeployStrategy | None = None
) -> dict[str, Any]:
    """Blue/green: `strategy`'s traffic shifting (None: all at once, no baking: staging), with
    auto-rollback on the alarms (omitted when there are none) while traffic shifts and during
    the baking period before the old fleet is terminated."""
    if strategy is None:
        routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
        baking, timeout = STAGING_BAKING_SECONDS, 3600
    else:
        routing = traffic_routing(strategy)
        baking = strategy.termination_wait_seconds if alarm_names else 0
        timeout = strategy.maximum_execution_timeout_seconds
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": baking,
            "MaximumExecutionTimeoutInSeconds": timeout,
        }
    }
    if alarm_names:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in alarm_names]
        }
    return config


def model_request(name: str, request: DeployRequest, settings: DeploySettings) -> dict[str, Any]:
    config = request.config
    return {
        "ModelName": name,
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "PrimaryContainer": {
            "Image": request.candidate.image_uri,
            "ModelDataUrl": request.candidate.model_artifact_uri,
            "Environment": {
                "TARGET_COLUMN": config.target_column,
                "PROBLEM_TYPE": config.problem_type,
            },
        },
        "Tags": [
            {"Key": "sfn-mlops:execution", "Value": request.execution_name},
            {"Key": "sfn-mlops:model-package", "Value": request.candidate.model_package_arn},
        ],
    }


def endpoint_config_request(name: str, model_name: str, request: DeployRequest) -> dict[str, Any]:
    endpoint = request.config.endpoint
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": ENDPOINT_VARIANT_NAME,
                "ModelName": model_name,
                "InstanceType": endpoint.instance_type,
                "InitialInstanceCount": endpoint.instance_count,
                "InitialVariantWeight": 1.0,
            }
        ],
        "Tags": [{"Key": "sfn-mlops:execution", "Value": request.execution_name}],
    }


def data_capture_config(settings: DeploySettings) -> dict[str, Any]:
    """The production endpoint's DataCaptureConfig: requests and responses, sampled, as
    SageMaker's JSON Lines under s3://<bucket>/capture/<endpoint>/<variant>/yyyy/mm/dd/hh/
    (what the drift check reads). CSV and JSON bodies are captured as text, others base64."""
    return {
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": settings.data_capture_percent,
            "DestinationS3Uri": f"s3://{settings.artifact_bucket}/{CAPTURE_PREFIX.rstrip('/')}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        }
    }


def stage_deployment(request: DeployRequest, settings: DeploySettings) -> dict[str, Any]:
    """The UpdateEndpoint DeploymentConfig of the request's stage."""
    if request.stage == "staging":
        return deployment_config(settings.staging_alarm_names)
    return deployment_config(settings.endpoint_alarm_names, request.config.deploy_strategy)


def hold_deploy_lock(
    request: DeployRequest, table: CoordinationTable, sagemaker: SageMaker
) -> bool:
    """UpdateEndpoint changes the endpoint only under its deployment lock; True if it had to
    take the lock back.

    A failed execution's FAILED event releases its lock (functions/lock), so a redrive from
    UpdateEndpoint, or from PollEndpoint (which restarts UpdateEndpoint), arrives without
    it. Then the lock is taken back if it is free, and the decision stands only if the
    endpoint still serves the champion it was made against (or this execution's model,
    deployed by the failed attempt). Otherwise the state fails saying what to do.
    """
    lock, recheck = request.lock, request.recheck
    registry = request.candidate.source == "registry"  # a person approved: no champion check
    if lock is None or (recheck is None and not registry):
        raise InvalidInputError(
            "UpdateEndpoint needs $.lock and $.recheck (AcquireDeployLock, CheckChampion): "
            "it runs only after the deployment lock was taken"
        )
    me, endpoint = request.execution_arn, request.config.endpoint_name
    holder = table.owner_of(lock.lock_key)
    if holder == me:
        return False
    if holder is not None or not table.take(lock.lock_key, me):
        raise DeployLockLostError(
            f"endpoint {endpoint}: the deployment lock is held by "
            f"{holder or 'another execution'}; this execution's was released when it failed. "
            "Redrive again when that execution has finished, or start a new execution"
        )
    if recheck is None:  # a registry approval's run: the approval stands whatever serves
        logger.info("deployment lock taken back after a redrive", extra={"lock": lock.lock_key})
        return True
    now = find_champion(sagemaker, endpoint)
    if now not in (recheck.champion_model_uri, request.candidate.model_artifact_uri):
        raise DeployLockLostError(
            f"endpoint {endpoint} serves {now}, not the champion "
            f"{recheck.champion_model_uri} this execution's decision was made against "
            "(another execution deployed while this one was failed): start a new execution, "
            "which evaluates against the model serving now"
        )
    logger.info("deployment lock taken back after a redrive", extra={"lock": lock.lock_key})
    return True


def deploy(request: DeployRequest, settings: DeploySettings, sagemaker: SageMaker) -> DeployOutput:
    if request.candidate.source == "pipeline" and (request.gate is None or not request.gate.deploy):
        reasons = request.gate.reasons if request.gate is not None else ["no $.gate"]
        raise InvalidInputError(
            "deploy called although the gate did not approve a deployment: " + "; ".join(reasons)
        )
    config = request.config
    endpoint_name = request.endpoint_name
    model_name = resource_name(request.execution_name, "model")  # one model, both stages
    config_name = resource_name(
        request.execution_name, "config" if request.stage == "production" else "staging"
    )

    endpoint = sagemaker.describe_endpoint(endpoint_name)
    if endpoint is not None and endpoint.get("EndpointStatus") == "Failed":
        raise EndpointFailedError(
            f"endpoint {endpoint_name} is Failed ({endpoint.get('FailureReason')}): "
            "SageMaker only allows DeleteEndpoint on it; delete it and re-run"
        )

    if sagemaker.create_model(model_request(model_name, request, settings)):
        logger.info("model created", extra={"model": model_name})
    endpoint_config = endpoint_config_request(config_name, model_name, request)
    if request.stage != "staging":  # the drift check watches production's traffic
        endpoint_config.update(data_capture_config(settings))
    if sagemaker.create_endpoint_config(endpoint_config):
        logger.info(
            "endpoint config created",
            extra={"endpoint_config": config_name, "stage": request.stage},
        )

    action: Literal["create", "update", "none"]
    history: tuple[str, float] | None = None  # a first create has none: the adaptive schedule
    if endpoint is None:
        sagemaker.create_endpoint(
            endpoint_name,
            config_name,
            [{"Key": "sfn-mlops:execution", "Value": request.execution_name}],
        )
        action, status = "create", "InProgress"
    else:
        status = str(endpoint.get("EndpointStatus"))
        serving = endpoint.get("EndpointConfigName")
        pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if config_name in (serving, pending):
            action = "none"  # a re-run: this execution's config is (being) deployed already
            status = "Completed" if status == "InService" and serving == config_name else status
        elif status in BUSY:
            raise TransientServiceError(
                f"endpoint {endpoint_name} is {status} (another update); retry later"
            )
        else:
            # the last update's duration predicts this one's (read before it changes)
            if config.poll_schedule == "predictive":
                history = endpoint_history(sagemaker, endpoint)
            sagemaker.update_endpoint(
                endpoint_name, config_name, stage_deployment(request, settings)
            )
            action, status = "update", "InProgress"
    logger.info("deploy", extra={"action": action, "config": config_name, "stage": request.stage})
    return DeployOutput(
        endpoint_name=endpoint_name,
        endpoint_config_name=config_name,
        model_name=model_name,
        action=action,
        job_name=endpoint_name,
        poll=first_poll("Completed" if status == "Completed" else "InProgress", config, history),
        model_package_arn=request.candidate.model_package_arn,
        sample_uri=request.candidate.sample_uri,
    )
