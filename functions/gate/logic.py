"""The gate (EvaluateModel, result at $.gate): reads the evaluation report the evaluate job
wrote and decides: threshold met and champion beaten? Deploy = passed and auto. It also
carries the preprocessing profile's warnings into the execution's output."""

from __future__ import annotations

import json
import math

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

#: Two metric values within this *relative* distance are equal (a tie is not decided by
#: floating-point noise such as 1.1e-16); the absolute floor only matters for values at 0.
TIE_RELATIVE_TOLERANCE = 1e-9
TIE_ABSOLUTE_FLOOR = 1e-12


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


def tied(a: float, b: float) -> bool:
    """Equal within TIE_RELATIVE_TOLERANCE of the larger magnitude."""
    return math.isclose(a, b, rel_tol=TIE_RELATIVE_TOLERANCE, abs_tol=TIE_ABSOLUTE_FLOOR)


def beats_champion(challenger: float, champion: float, objective: Objective) -> tuple[bool, str]:
    """Whether the challenger beats the champion, and the comparison in words.

    gain = how much better the challenger is, in the objective's direction; values within
    the relative tolerance are equal (gain 0). `min_improvement: 0` means *strictly better*:
    an equal challenger does not replace the champion (no churn for a model that is not
    better). A positive min_improvement is met by a gain equal to it within the tolerance.
    """
    maximize = objective.goal == "maximize"
    gain = (
        0.0
        if tied(challenger, champion)
        else (challenger - champion if maximize else champion - challenger)
    )
    needed = objective.min_improvement
    if needed == 0:
        beats = gain > 0
        rule = "needs strictly better"
    else:
        beats = gain >= needed or tied(gain, needed)
        rule = f"needs >= {needed:.6g} better"
    if gain == 0:
        how = f"equal within relative {TIE_RELATIVE_TOLERANCE:g}"
    else:
        how = f"{abs(gain):.6g} {'better' if gain > 0 else 'worse'}"
    return beats, f"{challenger:.6g} vs champion {champion:.6g}: {how} ({rule})"


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
        beats, comparison = beats_champion(challenger, champion, objective)
        reasons.append(f"challenger {name} {comparison}")
        if not beats:
            reasons[-1] += " (champion not beaten)"

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
    """EvaluateModel decides on the evaluation report; FreshGate (with `recheck`) decides
    again on the re-evaluation against the champion that serves now."""
    recheck = request.recheck
    fresh = recheck is not None and recheck.changed and recheck.report_uri is not None
    report_uri = (
        recheck.report_uri
        if fresh and recheck and recheck.report_uri
        else request.evaluate.report_uri
    )
    report = read_report(s3, report_uri)
    if report.problem_type != request.config.problem_type:
        raise ArtifactError(
            f"{report_uri}: problem_type {report.problem_type!r} differs from the "
            f"execution's {request.config.problem_type!r}"
        )
    decision = decide(report, request.config.objective, request.config.deploy_mode, report_uri)
    if request.preprocess is not None:
        warnings = data_warnings(s3, request.preprocess.profile_uri)
        if warnings:
            decision = decision.model_copy(update={"data_warnings": warnings})
    if not fresh or recheck is None:
        return decision
    newer = (
        f"the champion changed since evaluation ({recheck.evaluated_champion_uri or 'none'} -> "
        f"{recheck.champion_model_uri or 'none'}): compared again with the newer champion on "
        "the same test split"
    )
    return decision.model_copy(update={"reasons": [newer, *decision.reasons]})


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
