"""Evaluation: start the Processing job that scores the challenger (this execution's model)
and the champion (the model behind the endpoint now, if any) on the same test split. The
gate, which reads the report and decides, is functions/gate/."""

from __future__ import annotations

from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.champion import find_champion
from shared.jobs import (
    EVALUATION_REPORT,
    PROCESSING_INPUT,
    processing_job_request,
    s3_input,
    start_or_reuse,
)
from shared.models import (
    EvaluateOutput,
    EvaluateRequest,
    PollState,
    RecheckOutput,
    RecheckRequest,
)
from shared.naming import artifact_prefix
from shared.observability import logger
from shared.schedule import job_first_poll
from shared.settings import JobSettings

STEP = "evaluate"


def report_prefix(settings: JobSettings, execution_name: str, step: str = STEP) -> str:
    base = artifact_prefix(
        settings.artifact_bucket, settings.artifacts_prefix, execution_name, step
    )
    return f"{base}/evaluation"


def processing_request(
    name: str,
    request: EvaluateRequest,
    settings: JobSettings,
    champion_uri: str | None,
    output: str,
    baseline: bool = False,
) -> dict[str, Any]:
    """`baseline`: also give the job the train split, from which it writes the challenger's
    drift baseline beside its report (shared/jobs.py baseline_uris; not for a recheck)."""
    inputs = [
        s3_input("test", request.preprocess.test_uri, f"{PROCESSING_INPUT}/test"),
        s3_input("challenger", request.train.model_artifact_uri, f"{PROCESSING_INPUT}/challenger"),
        # one profile per preprocessing host: evaluate writes the merged profile
        s3_input("profile", request.preprocess.profile_uri, f"{PROCESSING_INPUT}/profile"),
    ]
    if champion_uri:
        inputs.append(s3_input("champion", champion_uri, f"{PROCESSING_INPUT}/champion"))
    if baseline:
        inputs.append(s3_input("train", request.preprocess.train_uri, f"{PROCESSING_INPUT}/train"))
    return processing_job_request(
        name,
        STEP,
        request.config,
        settings.sagemaker_role_arn,
        request.execution_name,
        inputs,
        {"evaluation": output},
        request.config.evaluation_compute,
    )


def _champion_of(job_description: dict[str, Any]) -> str | None:
    """The champion a (reused) evaluation job was started with."""
    for item in job_description.get("ProcessingInputs", []):
        if item.get("InputName") == "champion":
            uri = item.get("S3Input", {}).get("S3Uri")
            return str(uri) if uri else None
    return None


def start_evaluation(
    request: EvaluateRequest, settings: JobSettings, sagemaker: SageMaker
) -> EvaluateOutput:
    output = report_prefix(settings, request.execution_name)
    champion_uri = find_champion(sagemaker, request.config.endpoint_name)
    job = start_or_reuse(
        sagemaker,
        "processing",
        request.execution_name,
        STEP,
        lambda name: processing_request(name, request, settings, champion_uri, output, True),
    )
    if job.existing is not None:  # reused: the champion is what that job was given
        champion_uri = _champion_of(job.existing.description)
    config = request.config
    return EvaluateOutput(
        job_name=job.name,
        reused=job.reused,
        report_uri=f"{output}/{EVALUATION_REPORT}",
        champion_model_uri=champion_uri,
        poll=job_first_poll(sagemaker, "processing", STEP, job.status, config),
    )


# --- recheck: the champion serving now, under the deployment lock ----------------------------

RECHECK_STEP = "recheck"


def recheck(request: RecheckRequest, settings: JobSettings, sagemaker: SageMaker) -> RecheckOutput:
    """Unchanged champion -> nothing to do. Changed (another execution deployed since this
    one's evaluation) -> a re-evaluation job, the container's evaluate step on the same test
    split with the new champion, named from the execution and step `recheck` (so a retry or
    redrive reuses it, and a failed one is started again as the next attempt)."""
    before = request.evaluate.champion_model_uri
    now = find_champion(sagemaker, request.config.endpoint_name)
    if now == request.train.model_artifact_uri:
        now = before  # this execution's own model serves already (an earlier attempt deployed)
    config = request.config
    if now == before:
        return RecheckOutput(
            changed=False,
            evaluated_champion_uri=before,
            champion_model_uri=now,
            job_name=None,
            reused=False,
            report_uri=None,
            poll=PollState(status="Completed", attempt=0, wait_seconds=1),
        )
    output = report_prefix(settings, request.execution_name, RECHECK_STEP)
    job = start_or_reuse(
        sagemaker,
        "processing",
        request.execution_name,
        RECHECK_STEP,
        lambda name: processing_request(name, request, settings, now, output),
    )
    if job.existing is not None:
        now = _champion_of(job.existing.description)
    logger.info(
        "champion changed since evaluation",
        extra={"evaluated": before, "now": now, "job_name": job.name},
    )
    return RecheckOutput(
        changed=True,
        evaluated_champion_uri=before,
        champion_model_uri=now,
        job_name=job.name,
        reused=job.reused,
        report_uri=f"{output}/{EVALUATION_REPORT}",
        # the container's evaluate step: its history is the evaluation jobs' durations
        poll=job_first_poll(sagemaker, "processing", STEP, job.status, config),
    )
