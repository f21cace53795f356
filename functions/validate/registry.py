"""ValidateInput for a registry approval's run (payload ``{"model_package_arn": ...}`` plus
optional overrides): the package must be in this pipeline's model package group and
Approved; the run's config is the defaults with the package's image, data and problem
(its container and CustomerMetadataProperties, written by RegisterModel), and the candidate
is the package. No data is read: nothing is trained."""

from __future__ import annotations

from typing import Any

from shared.adapters.sagemaker import SageMaker
from shared.errors import InvalidInputError
from shared.models import Candidate

PACKAGE_KEY = "model_package_arn"
SAMPLE_KEY = "sample_uri"  # functions/register/logic.py writes it


def package_payload(
    sagemaker: SageMaker, arn: Any, group: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload overrides from the package, the candidate's fields) or InvalidInputError."""
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
    return overrides, candidate


def as_candidate(fields: dict[str, Any]) -> Candidate:
    return Candidate.model_validate(fields)
