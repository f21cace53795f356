"""The gate (EvaluateModel, result at $.gate): reads the evaluation report the evaluate job
wrote and decides: threshold met and champion beaten? Deploy = passed and auto. It also
carries the preprocessing profile's warnings into the execution's output."""

from __future__ import annotations

import json

from pydantic import ValidationError

from shared.adapters.s3 import S3
from shared.errors import ArtifactError, validation_problems
from shared.models import (
    ApprovalStatus,
    EvaluationReport,
    GateOutput,
    GateRequest,
    Objective,
)


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
    decision = decide(report, request.config.objective, request.config.deploy_mode, report_uri)
    if request.preprocess is None:
        return decision
    warnings = data_warnings(s3, request.preprocess.profile_uri)
    return decision.model_copy(update={"data_warnings": warnings}) if warnings else decision


def data_warnings(s3: S3, profile_uri: str) -> list[str]:
    """The preprocessing profile's warnings (e.g. a data file with a header and no rows),
    so they reach the execution's output, not only the job's log."""
    uri = f"{profile_uri.rstrip('/')}/profile.json"
    try:
        profile = json.loads(s3.read_text(uri))
    except (ArtifactError, json.JSONDecodeError) as exc:
        return [f"the preprocessing profile {uri} is unreadable: {exc}"]
    found = profile.get("warnings", []) if isinstance(profile, dict) else []
    return [str(w) for w in found] if isinstance(found, list) else []
