"""ValidateInput for a registry approval's run (payload ``{"model_package_arn": ...}`` plus
optional overrides): the package must be in this pipeline's model package group and
Approved; the run's config is the defaults with the package's image, data and problem
(its container and CustomerMetadataProperties, written by RegisterModel), and the candidate
is the package. No data is read: nothing is trained. The run's $.register is the package and
its $.gate the approval (with the metrics the package was registered with), so NotifySuccess
reports it as it reports a training run."""

from __future__ import annotations

from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.errors import InvalidInputError
from shared.models import Candidate, GateOutput, RegisterOutput

PACKAGE_KEY = "model_package_arn"
SAMPLE_KEY = "sample_uri"  # functions/register/logic.py writes it
#: what RegisterModel records of its gate (functions/register/logic.py _metadata)
METRIC_KEY, CHALLENGER_KEY, CHAMPION_KEY = "objective_metric", "challenger_value", "champion_value"


def package_payload(
    sagemaker: SageMaker, arn: Any, group: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload overrides from the package, the run's candidate, register and gate fields) or
    InvalidInputError."""
    if not isinstance(arn, str) or ":model-package/" not in arn:
        raise InvalidInputError(f"{PACKAGE_KEY}: {arn!r} is not a model package ARN")
    package = sagemaker.describe_model_package(arn)
    problems = []
    if package.get("ModelPackageGroupName") != group:
        problems.append(
            f"{PACKAGE_KEY}: {arn} is in group {package.get('ModelPackageGroupName')!r}, not "
            f"this pipeline's {group!r}"
        )
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        problems.append(
            f"{PACKAGE_KEY}: {arn} is {status}: only an Approved package is deployed "
            f"(`sfn-mlops approve {arn}`)"
        )
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    container = containers[0]
    metadata = package.get("CustomerMetadataProperties") or {}
    if not container.get("ModelDataUrl") or not container.get("Image"):
        problems.append(f"{PACKAGE_KEY}: {arn} has no container image and ModelDataUrl")
    if not metadata.get(SAMPLE_KEY):
        problems.append(
            f"{PACKAGE_KEY}: {arn} has no {SAMPLE_KEY} metadata (rows for the smoke test): "
            "register it through the pipeline"
        )
    if not metadata.get(METRIC_KEY) or _number(metadata.get(CHALLENGER_KEY)) is None:
        problems.append(
            f"{PACKAGE_KEY}: {arn} has no {METRIC_KEY}/{CHALLENGER_KEY} metadata (the metric "
            "it was approved on): register it through the pipeline"
        )
    if problems:
        raise InvalidInputError(
            f"{len(problems)} invalid field(s) in the execution input: " + "; ".join(problems)
        )
    env = container.get("Environment") or {}
    overrides: dict[str, Any] = {"image_uri": container["Image"]}
    for key in ("TARGET_COLUMN", "PROBLEM_TYPE"):
        if env.get(key):
            overrides[key.lower()] = env[key]
    if metadata.get("raw_data_uri"):
        overrides["raw_data_uri"] = metadata["raw_data_uri"]
    candidate = {
        "model_package_arn": arn,
        "model_artifact_uri": container["ModelDataUrl"],
        "image_uri": container["Image"],
        "sample_uri": metadata[SAMPLE_KEY],
        "source": "registry",
    }
    register = {
        "model_package_arn": arn,
        "model_package_group": group,
        "approval_status": "Approved",
        "reused": True,
    }
    gate = {
        "passed": True,
        "deploy": True,
        "approval_status": "Approved",
        "reasons": [f"approved in the model registry: {arn} (a person decided; no gate ran)"],
        "metric": metadata[METRIC_KEY],
        "challenger": _number(metadata[CHALLENGER_KEY]),
        "champion": _number(metadata.get(CHAMPION_KEY)),
    }
    return overrides, {"candidate": candidate, "register": register, "gate": gate}


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def as_promotion(fields: dict[str, Any]) -> tuple[Candidate, RegisterOutput, GateOutput]:
    return (
        Candidate.model_validate(fields["candidate"]),
        RegisterOutput.model_validate(fields["register"]),
        GateOutput.model_validate(fields["gate"]),
    )
