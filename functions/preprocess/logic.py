"""Start (or reuse) the preprocessing Processing job: raw CSVs -> train/validation/test splits,
a data profile and a few feature-only sample rows for the smoke test."""

from __future__ import annotations

from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.jobs import (
    CONTAINER_ENTRYPOINT,
    PREPROCESS_OUTPUTS,
    PROCESSING_INPUT,
    PROCESSING_OUTPUT,
    initial_poll,
    job_tags,
    s3_input,
    s3_output,
    start_or_reuse,
)
from shared.models import PreprocessOutput, StepRequest
from shared.naming import artifact_prefix
from shared.settings import JobSettings

STEP = "preprocess"


def output_uris(settings: JobSettings, execution_name: str) -> dict[str, str]:
    """Where each preprocess output lands: s3://bucket/runs/<execution>/preprocess/<name>."""
    base = artifact_prefix(
        settings.artifact_bucket, settings.artifacts_prefix, execution_name, STEP
    )
    return {name: f"{base}/{name}" for name in PREPROCESS_OUTPUTS}


def processing_request(
    name: str, request: StepRequest, settings: JobSettings, outputs: dict[str, str]
) -> dict[str, Any]:
    config = request.config
    return {
        "ProcessingJobName": name,
        "RoleArn": settings.sagemaker_role_arn,
        "AppSpecification": {
            "ImageUri": config.image_uri,
            "ContainerEntrypoint": [*CONTAINER_ENTRYPOINT, STEP],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": config.processing.instance_count,
                "InstanceType": config.processing.instance_type,
                "VolumeSizeInGB": config.processing.volume_size_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.max_runtime_seconds},
        "Environment": {
            "TARGET_COLUMN": config.target_column,
            "PROBLEM_TYPE": config.problem_type,
        },
        "ProcessingInputs": [s3_input("raw", config.raw_data_uri, f"{PROCESSING_INPUT}/raw")],
        "ProcessingOutputConfig": {
            "Outputs": [
                s3_output(out, uri, f"{PROCESSING_OUTPUT}/{out}") for out, uri in outputs.items()
            ]
        },
        "Tags": job_tags(request.execution_name, STEP),
    }


def start_preprocessing(
    request: StepRequest, settings: JobSettings, sagemaker: SageMaker
) -> PreprocessOutput:
    outputs = output_uris(settings, request.execution_name)
    job = start_or_reuse(
        sagemaker,
        "processing",
        request.execution_name,
        STEP,
        lambda name: processing_request(name, request, settings, outputs),
    )
    config = request.config
    return PreprocessOutput(
        job_name=job.name,
        reused=job.reused,
        train_uri=outputs["train"],
        validation_uri=outputs["validation"],
        test_uri=outputs["test"],
        profile_uri=outputs["profile"],
        sample_uri=outputs["sample"],
        poll=initial_poll(
            job.status, config.poll_interval_seconds, config.max_poll_interval_seconds
        ),
    )
