"""Start (or reuse) the SageMaker Training job on the preprocess splits."""

from __future__ import annotations

from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.jobs import MODEL_ARCHIVE, job_tags, start_or_reuse
from shared.models import PipelineInput, TrainOutput, TrainRequest
from shared.naming import artifact_prefix
from shared.schedule import PROGRESS_METRIC, job_first_poll
from shared.settings import JobSettings

STEP = "train"
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
        {"Name": PROGRESS_METRIC, "Regex": r"^\[([0-9]+)\]\s"}
    ]


def output_path(settings: JobSettings, execution_name: str) -> str:
    return artifact_prefix(
        settings.artifact_bucket, settings.artifacts_prefix, execution_name, STEP
    )


def model_artifact_uri(output: str, job_name: str) -> str:
    """Where SageMaker puts the model: <S3OutputPath>/<job name>/output/model.tar.gz."""
    return f"{output}/{job_name}/output/{MODEL_ARCHIVE}"


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "ContentType": "text/csv",
        "InputMode": "File",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


def training_request(
    name: str, request: TrainRequest, settings: JobSettings, output: str
) -> dict[str, Any]:
    config = request.config
    return {
        "TrainingJobName": name,
        "RoleArn": settings.sagemaker_role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": config.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(config),
        },
        "HyperParameters": hyperparameters(config),
        "InputDataConfig": [
            _channel("train", request.preprocess.train_uri),
            _channel("validation", request.preprocess.validation_uri),
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
