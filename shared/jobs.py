"""Starting SageMaker jobs idempotently, and the container contract the jobs follow.

A job's name is `naming.resource_name(execution, step, attempt)`. Starting a step looks for the
job of attempt 1, 2, ... in turn: a job that is InProgress or Completed is reused (a plain
Lambda retry, or a re-run of a state whose job is fine, trains nothing twice); a job that
Failed or was Stopped moves on to the next attempt (so a redrive after a failure retrains).
A name that does not exist yet is created; if CreateXJob answers ResourceInUse (a concurrent
duplicate got there first) the job is described and judged the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.adapters.sagemaker import JobKind, JobStatus, SageMaker
from shared.errors import JobFailedError, TransientServiceError
from shared.models import Compute, PipelineInput
from shared.naming import resource_name
from shared.observability import logger

MAX_ATTEMPTS = 10
REUSABLE = frozenset({"InProgress", "Completed"})

# --- the container contract (container/sfn_container; brief "Container contract") ----------
CONTAINER_ENTRYPOINT = ("python3", "-m", "sfn_container")
PROCESSING_INPUT = "/opt/ml/processing/input"
PROCESSING_OUTPUT = "/opt/ml/processing/output"
PREPROCESS_OUTPUTS = ("train", "validation", "test", "profile", "sample")
EVALUATION_REPORT = "evaluation.json"
#: The challenger's drift baseline, beside its evaluation report (container drift.py).
BASELINE_FILES = ("baseline/statistics.json", "baseline/constraints.json")


def baseline_uris(report_uri: str) -> tuple[str, str]:
    """(statistics, constraints) URIs of the baseline the evaluation job at `report_uri` wrote."""
    prefix = report_uri.rsplit("/", 1)[0]
    return f"{prefix}/{BASELINE_FILES[0]}", f"{prefix}/{BASELINE_FILES[1]}"


MODEL_ARCHIVE = "model.tar.gz"


@dataclass(frozen=True)
class StartedJob:
    name: str
    attempt: int
    reused: bool
    status: str  # InProgress | Completed (of the job now followed)
    existing: JobStatus | None  # the described job when reused


def start_or_reuse(
    sagemaker: SageMaker,
    kind: JobKind,
    execution_name: str,
    step: str,
    build_request: Callable[[str], dict[str, Any]],
) -> StartedJob:
    """Start the job of `step` for this execution, or reuse the one that is already there."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = resource_name(execution_name, step, attempt)
        existing = sagemaker.describe_job(kind, name)
        if existing is None:
            if sagemaker.create_job(kind, build_request(name)):
                logger.info("job started", extra={"job_name": name, "step": step})
                return StartedJob(name, attempt, reused=False, status="InProgress", existing=None)
            existing = sagemaker.describe_job(kind, name)  # ResourceInUse: someone beat us
            if existing is None:
                raise TransientServiceError(f"{name}: ResourceInUse but not describable yet")
        if existing.status in REUSABLE:
            logger.info(
                "job reused", extra={"job_name": name, "step": step, "status": existing.status}
            )
            return StartedJob(name, attempt, reused=True, status=existing.status, existing=existing)
        logger.info(
            "previous attempt ended; starting the next one",
            extra={"job_name": name, "status": existing.status, "reason": existing.failure_reason},
        )
    raise JobFailedError(
        f"{step}: {MAX_ATTEMPTS} attempts of this execution's {kind} job failed or were stopped; "
        "start a new execution"
    )


def job_tags(execution_name: str, step: str) -> list[dict[str, str]]:
    return [
        {"Key": "sfn-mlops:execution", "Value": execution_name},
        {"Key": "sfn-mlops:step", "Value": step},
    ]


def distribution(sharded: bool) -> str:
    """S3DataDistributionType: each host a disjoint subset of the objects, or all of them."""
    return "ShardedByS3Key" if sharded else "FullyReplicated"


def s3_input(name: str, uri: str, local_dir: str, *, sharded: bool = False) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_dir,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": distribution(sharded),
        },
    }


def s3_output(name: str, uri: str, local_dir: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local_dir, "S3UploadMode": "EndOfJob"},
    }


def processing_job_request(
    name: str,
    step: str,
    config: PipelineInput,
    role_arn: str,
    execution_name: str,
    inputs: list[dict[str, Any]],
    outputs: dict[str, str],
    compute: Compute,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """CreateProcessingJob for a container `step` (preprocess, evaluate): the image's
    `python3 -m sfn_container <step>`, `compute` and the runtime limit, the target column and
    problem type (and `environment`) as environment, S3 `inputs`, and one S3 output per
    `outputs` entry (name -> URI, written from /opt/ml/processing/output/<name>)."""
    return {
        "ProcessingJobName": name,
        "RoleArn": role_arn,
        "AppSpecification": {
            "ImageUri": config.image_uri,
            "ContainerEntrypoint": [*CONTAINER_ENTRYPOINT, step],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": compute.instance_count,
                "InstanceType": compute.instance_type,
                "VolumeSizeInGB": compute.volume_size_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.max_runtime_seconds},
        "Environment": {
            "TARGET_COLUMN": config.target_column,
            "PROBLEM_TYPE": config.problem_type,
            "IGNORE_COLUMNS": json.dumps(config.ignore_columns),
            **(environment or {}),
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                s3_output(out, uri, f"{PROCESSING_OUTPUT}/{out}") for out, uri in outputs.items()
            ]
        },
        "Tags": job_tags(execution_name, step),
    }
