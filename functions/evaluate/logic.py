"""Evaluation: start the Processing job that scores the challenger (this execution's model)
and the champion (the model behind the endpoint now, if any) on the same test split; then
the gate, which reads the report and decides."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.adapters.s3 import S3
from shared.adapters.sagemaker import SageMaker
from shared.errors import ArtifactError, validation_problems
from shared.jobs import (
    EVALUATION_REPORT,
    PROCESSING_INPUT,
    initial_poll,
    processing_job_request,
    s3_input,
    start_or_reuse,
)
from shared.models import (
    ApprovalStatus,
    EvaluateOutput,
    EvaluateRequest,
    EvaluationReport,
    GateOutput,
    GateRequest,
    Objective,
)
from shared.naming import artifact_prefix
from shared.observability import logger
from shared.settings import JobSettings

STEP = "evaluate"
#: Endpoint states in which EndpointConfigName is the config that serves traffic.
SERVING_STATES = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})


# --- start ----------------------------------------------------------------------------------


def find_champion(sagemaker: SageMaker, endpoint_name: str) -> str | None:
    """The model artifact (ModelDataUrl) the endpoint serves now; None if there is no endpoint,
    or it serves nothing (Creating, Failed)."""
    endpoint = sagemaker.describe_endpoint(endpoint_name)
    if endpoint is None:
        logger.info("no champion: endpoint does not exist", extra={"endpoint": endpoint_name})
        return None
    status = endpoint.get("EndpointStatus")
    if status not in SERVING_STATES:
        logger.info("no champion: endpoint not serving", extra={"status": status})
        return None
    config = sagemaker.describe_endpoint_config(str(endpoint["EndpointConfigName"]))
    if config is None or not config.get("ProductionVariants"):
        return None
    model = sagemaker.describe_model(str(config["ProductionVariants"][0]["ModelName"]))
    if model is None:
        return None
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    url = container.get("ModelDataUrl")
    return str(url) if url else None


def report_prefix(settings: JobSettings, execution_name: str) -> str:
    base = artifact_prefix(
        settings.artifact_bucket, settings.artifacts_prefix, execution_name, STEP
    )
    return f"{base}/evaluation"


def processing_request(
    name: str,
    request: EvaluateRequest,
    settings: JobSettings,
    champion_uri: str | None,
    output: str,
) -> dict[str, Any]:
    inputs = [
        s3_input("test", request.preprocess.test_uri, f"{PROCESSING_INPUT}/test"),
        s3_input("challenger", request.train.model_artifact_uri, f"{PROCESSING_INPUT}/challenger"),
    ]
    if champion_uri:
        inputs.append(s3_input("champion", champion_uri, f"{PROCESSING_INPUT}/champion"))
    return processing_job_request(
        name,
        STEP,
        request.config,
        settings.sagemaker_role_arn,
        request.execution_name,
        inputs,
        {"evaluation": output},
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
        lambda name: processing_request(name, request, settings, champion_uri, output),
    )
    if job.existing is not None:  # reused: the champion is what that job was given
        champion_uri = _champion_of(job.existing.description)
    config = request.config
    return EvaluateOutput(
        job_name=job.name,
        reused=job.reused,
        report_uri=f"{output}/{EVALUATION_REPORT}",
        champion_model_uri=champion_uri,
        poll=initial_poll(
            job.status, config.poll_interval_seconds, config.max_poll_interval_seconds
        ),
    )


# --- gate -----------------------------------------------------------------------------------


def read_report(s3: S3, uri: str) -> EvaluationReport:
    text = s3.read_text(uri)
    try:
        return EvaluationReport.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{uri} is not JSON: {exc.msg} at {exc.pos}") from exc
    except ValidationError as exc:
        raise ArtifactError(f"{uri}: " + "; ".join(validation_problems(exc))) from exc


def _metric(report_uri: str, who: str, metrics: dict[str, float | None], name: str) -> float | None:
    if name not in metrics:
        raise ArtifactError(f"{report_uri}: {who}.metrics has no {name!r} (has {sorted(metrics)})")
    return metrics[name]


def decide(
    report: EvaluationReport,
    objective: Objective,
    deploy_mode: str,
    report_uri: str = "evaluation report",
) -> GateOutput:
    """Passed = the challenger meets the threshold AND (no champion OR it beats the champion
    by at least min_improvement), in the objective's direction. Deploy = passed and auto."""
    name = objective.name
    maximize = objective.goal == "maximize"
    challenger = _metric(report_uri, "challenger", report.challenger.metrics, name)
    if challenger is None:
        raise ArtifactError(
            f"{report_uri}: the challenger's {name} is undefined on the test split "
            "(e.g. AUC with a single class): fix the data or choose another objective metric"
        )
    champion = (
        _metric(report_uri, "champion", report.champion.metrics, name)
        if report.champion is not None
        else None
    )
    reasons: list[str] = []

    meets = challenger >= objective.threshold if maximize else challenger <= objective.threshold
    relation = (">=" if maximize else "<=") if meets else ("<" if maximize else ">")
    reasons.append(
        f"{name} {challenger:.6g} {relation} threshold {objective.threshold:.6g}"
        + ("" if meets else " (threshold not met)")
    )

    comparable = True
    if champion is None:
        beats = True
        if report.champion is not None:
            reasons.append(f"champion's {name} is undefined on the test split: nothing to beat")
        elif report.champion_error:
            # A champion exists but cannot score this data (e.g. the feature schema changed):
            # deploying would silently change the endpoint's contract, so a person decides.
            beats = comparable = False
            reasons.append(
                f"champion could not be scored on this test split ({report.champion_error}): "
                "not comparable, so not deployed automatically (registered for manual approval)"
            )
        else:
            reasons.append("no champion: nothing to beat")
    else:
        gain = challenger - champion if maximize else champion - challenger
        beats = gain >= objective.min_improvement
        better = "better" if gain >= 0 else "worse"
        reasons.append(
            f"challenger {name} {challenger:.6g} vs champion {champion:.6g}: "
            f"{abs(gain):.6g} {better} (needs >= {objective.min_improvement:.6g} better)"
            + ("" if beats else " (champion not beaten)")
        )

    passed = meets and beats
    deploy = passed and deploy_mode == "auto"
    approval: ApprovalStatus = (
        "Approved"
        if passed
        else ("PendingManualApproval" if meets and not comparable else "Rejected")
    )
    if passed and not deploy:
        reasons.append(f"deploy_mode is {deploy_mode!r}: not deploying")
    outcome = {"Approved": "approved", "Rejected": "rejected"}.get(approval, "awaits approval")
    reasons.append("deploying the challenger" if deploy else outcome)
    return GateOutput(
        passed=passed,
        deploy=deploy,
        approval_status=approval,
        reasons=reasons,
        metric=name,
        challenger=challenger,
        champion=champion,
    )


def gate(request: GateRequest, s3: S3) -> GateOutput:
    report_uri = request.evaluate.report_uri
    report = read_report(s3, report_uri)
    if report.problem_type != request.config.problem_type:
        raise ArtifactError(
            f"{report_uri}: problem_type {report.problem_type!r} differs from the "
            f"execution's {request.config.problem_type!r}"
        )
    return decide(report, request.config.objective, request.config.deploy_mode, report_uri)
