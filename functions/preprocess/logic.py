"""Start (or reuse) the preprocessing Processing job: raw CSVs -> train/validation/test splits,
a data profile and a few feature-only sample rows for the smoke test."""

from __future__ import annotations

from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.jobs import (
    PREPROCESS_OUTPUTS,
    PROCESSING_INPUT,
    processing_job_request,
    s3_input,
    start_or_reuse,
)
from shared.models import PreprocessOutput, StepRequest
from shared.naming import artifact_prefix
from shared.schedule import job_first_poll
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
    # Several hosts: each preprocesses a disjoint subset of the raw objects (the split is a
    # hash of each row, so it does not depend on the host count) and writes its own files.
    # SPLIT_PARTS: a training job with N hosts reads its channels sharded too, so every
    # split needs at least N CSV objects.
    raw = s3_input(
        "raw",
        config.raw_data_uri,
        f"{PROCESSING_INPUT}/raw",
        sharded=config.processing.instance_count > 1,
    )
    return processing_job_request(
        name,
        STEP,
        config,
        settings.sagemaker_role_arn,
        request.execution_name,
        [raw],
        outputs,
        config.processing,
        {"SPLIT_PARTS": str(config.training.instance_count)},
    )


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
        poll=job_first_poll(sagemaker, "processing", STEP, job.status, config),
    )
