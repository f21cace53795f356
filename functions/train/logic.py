"""Start (or reuse) the SageMaker Training job on the preprocess splits."""

from __future__ import annotations

from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.jobs import MODEL_ARCHIVE, distribution, job_tags, start_or_reuse
from shared.models import PipelineInput, TrainOutput, TrainRequest
from shared.naming import artifact_prefix, checkpoint_uri
from shared.resources import CHECKPOINTS_PREFIX
from shared.schedule import PROGRESS_METRIC, job_first_poll
from shared.settings import JobSettings

STEP = "train"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# The container logs XGBoost's "[12]\ttrain-auc:0.99\tvalidation-auc:0.97" each round and
# "validation-auc: 0.97" at the end.
CLASSIFICATION_LOG_METRICS = ("auc", "logloss", "error")
REGRESSION_LOG_METRICS = ("rmse", "mae")


def hyperparameters(config: PipelineInput) -> dict[str, str]:
    """SageMaker passes hyperparameters as strings; the container also needs the target and
    the problem type."""
    params = {name: str(value) for name, value in config.hyperparameters.items()}
    params["target_column"] = config.target_column
    params["problem_type"] = config.problem_type
    if config.training.use_spot:
        params["checkpoint_interval"] = str(config.training.checkpoint_interval)
    return params


def metric_definitions(config: PipelineInput) -> list[dict[str, str]]:
    names = (
        REGRESSION_LOG_METRICS
        if config.problem_type == "regression"
        else CLASSIFICATION_LOG_METRICS
    )
    return [
        {"Name": f"{channel}:{name}", "Regex": rf"{channel}-{name}:\s*{_NUMBER}"}
        for channel in ("train", "validation")
        for name in names
    ] + [
        # the round index of each "[12]\t..." line: the poll's progress (shared/schedule.py)
        # one host prints "[12]\t..."; the first host of several logs it through XGBoost's
        # collective, which prefixes the time: "[08:32:05] [12]\t..."
        {"Name": PROGRESS_METRIC, "Regex": r"^(?:\[[0-9:]+\] )?\[([0-9]+)\]\s"}
    ]


def output_path(settings: JobSettings, execution_name: str) -> str:
    return artifact_prefix(
        settings.artifact_bucket, settings.artifacts_prefix, execution_name, STEP
    )


def model_artifact_uri(output: str, job_name: str) -> str:
    """Where SageMaker puts the model: <S3OutputPath>/<job name>/output/model.tar.gz."""
    return f"{output}/{job_name}/output/{MODEL_ARCHIVE}"


def _channel(name: str, uri: str, sharded: bool) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "ContentType": "text/csv",
        "InputMode": "File",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": distribution(sharded),
            }
        },
    }


def training_request(
    name: str, request: TrainRequest, settings: JobSettings, output: str
) -> dict[str, Any]:
    config = request.config
    # Several hosts: each trains on its shard of train and validation (preprocess wrote
    # SPLIT_PARTS = instance_count parts per split, so every host gets some).
    sharded = config.training.instance_count > 1
    body: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": settings.sagemaker_role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": config.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(config),
        },
        "HyperParameters": hyperparameters(config),
        "InputDataConfig": [
            _channel("train", request.preprocess.train_uri, sharded),
            _channel("validation", request.preprocess.validation_uri, sharded),
        ],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {
            "InstanceType": config.training.instance_type,
            "InstanceCount": config.training.instance_count,
            "VolumeSizeInGB": config.training.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.max_runtime_seconds},
        "Tags": job_tags(request.execution_name, STEP),
    }
    if config.training.use_spot:
        body.update(spot_settings(settings, request.execution_name))
        body["StoppingCondition"]["MaxWaitTimeInSeconds"] = config.spot_max_wait_seconds
    return body


def spot_settings(settings: JobSettings, execution_name: str) -> dict[str, Any]:
    """Managed Spot training: spare capacity (often far cheaper), interruptible; the
    container checkpoints to /opt/ml/checkpoints, which SageMaker syncs with this prefix and
    copies back when it restarts the interrupted job."""
    return {
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {
            "S3Uri": checkpoint_uri(
                settings.artifact_bucket, CHECKPOINTS_PREFIX, execution_name, STEP
            ),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
    }


def start_training(
    request: TrainRequest, settings: JobSettings, sagemaker: SageMaker
) -> TrainOutput:
    output = output_path(settings, request.execution_name)
    job = start_or_reuse(
        sagemaker,
        "training",
        request.execution_name,
        STEP,
        lambda name: training_request(name, request, settings, output),
    )
    config = request.config
    return TrainOutput(
        job_name=job.name,
        reused=job.reused,
        model_artifact_uri=model_artifact_uri(output, job.name),
        poll=job_first_poll(sagemaker, "training", STEP, job.status, config),
    )
