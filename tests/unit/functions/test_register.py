"""register: one model package per execution in the Model Registry (moto in-process)."""

from __future__ import annotations

from typing import Any

import pytest
from fn_support import BUCKET, EXECUTION, EXECUTION_ARN, IMAGE, config, state
from sm_stubs import stubbed

from functions.register.handler import lambda_handler
from functions.register.logic import client_token, register
from shared import aws
from shared.adapters.sagemaker import SageMaker
from shared.errors import TransientServiceError
from shared.models import RegisterOutput, RegisterRequest

GROUP = "sfn-mlops-models"
ARTIFACT = f"s3://{BUCKET}/runs/{EXECUTION}/train/job/output/model.tar.gz"
REPORT = f"s3://{BUCKET}/runs/{EXECUTION}/evaluate/evaluation/evaluation.json"


def register_state(
    passed: bool = True,
    execution: str = EXECUTION,
    approval: str | None = None,
    **tags: str,
) -> dict[str, Any]:
    done = {"status": "Completed", "attempt": 2, "wait_seconds": 1}
    data = state(
        config=config(tags=tags),
        train={
            "job_name": "train-1",
            "reused": False,
            "model_artifact_uri": ARTIFACT,
            "poll": done,
        },
        evaluate={
            "job_name": "eval-1",
            "reused": False,
            "report_uri": REPORT,
            "champion_model_uri": None,
            "poll": done,
        },
        gate={
            "passed": passed,
            "deploy": passed,
            "approval_status": approval or ("Approved" if passed else "Rejected"),
            "reasons": ["auc 0.93 >= threshold 0.8"],
            "metric": "auc",
            "challenger": 0.93,
            "champion": None,
        },
    )
    data["execution_name"] = execution
    data["execution_arn"] = EXECUTION_ARN.replace(EXECUTION, execution)
    return data


def packages() -> list[dict[str, Any]]:
    return list(
        aws.sagemaker().list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    )


def test_registers_approved_package_with_metrics_and_lineage(moto: None, context: Any) -> None:
    # GIVEN a passed gate and no model package group yet
    event = register_state(True, git_sha="abc123", data_version="data/x.csv@v1")
    # WHEN RegisterModel runs
    out = RegisterOutput.model_validate(lambda_handler(event, context))
    # THEN the group exists and one Approved package carries metrics and lineage
    assert (out.approval_status, out.reused, out.model_package_group) == ("Approved", False, GROUP)
    aws.sagemaker().describe_model_package_group(ModelPackageGroupName=GROUP)
    package = aws.sagemaker().describe_model_package(ModelPackageName=out.model_package_arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == REPORT
    # the drift baseline the evaluation job wrote beside its report
    quality = package["DriftCheckBaselines"]["ModelDataQuality"]
    prefix = REPORT.rsplit("/", 1)[0]
    assert quality["Statistics"]["S3Uri"] == f"{prefix}/baseline/statistics.json"
    assert quality["Constraints"]["S3Uri"] == f"{prefix}/baseline/constraints.json"
    (container,) = package["InferenceSpecification"]["Containers"]
    assert (container["Image"], container["ModelDataUrl"]) == (IMAGE, ARTIFACT)
    meta = package["CustomerMetadataProperties"]
    assert meta["execution_name"] == EXECUTION
    assert meta["execution_arn"] == EXECUTION_ARN
    assert meta["git_sha"] == "abc123"
    assert meta["data_version"] == "data/x.csv@v1"
    assert meta["image_uri"] == IMAGE
    assert package["MetadataProperties"]["GeneratedBy"] == EXECUTION_ARN
    assert package["MetadataProperties"]["CommitId"] == "abc123"


def test_incomparable_champion_registers_pending_manual_approval(moto: None, context: Any) -> None:
    # GIVEN a gate that could not compare with the champion
    event = register_state(False, approval="PendingManualApproval")
    # WHEN RegisterModel runs
    out = RegisterOutput.model_validate(lambda_handler(event, context))
    # THEN the registry holds the package for a person to approve
    package = aws.sagemaker().describe_model_package(ModelPackageName=out.model_package_arn)
    assert out.approval_status == package["ModelApprovalStatus"] == "PendingManualApproval"


def test_failed_gate_registers_rejected(moto: None, context: Any) -> None:
    out = RegisterOutput.model_validate(lambda_handler(register_state(False), context))
    assert out.approval_status == "Rejected"
    assert [p["ModelApprovalStatus"] for p in packages()] == ["Rejected"]


def test_reinvoking_register_creates_no_second_package(moto: None, context: Any) -> None:
    # GIVEN this execution registered its package already
    first = lambda_handler(register_state(), context)
    # WHEN RegisterModel runs again with the same input
    second = RegisterOutput.model_validate(lambda_handler(register_state(), context))
    # THEN the same package is returned and the group holds one package
    assert second.reused
    assert second.model_package_arn == first["model_package_arn"]
    assert len(packages()) == 1


def test_each_execution_gets_its_own_package(moto: None, context: Any) -> None:
    # GIVEN an existing group with another execution's package
    lambda_handler(register_state(execution="img-other-run"), context)
    # WHEN this execution registers
    out = RegisterOutput.model_validate(lambda_handler(register_state(), context))
    # THEN a new version is added, the earlier package untouched
    assert not out.reused
    assert len(packages()) == 2


def test_client_token_is_per_execution_and_valid() -> None:
    token = client_token(EXECUTION_ARN)
    assert token == client_token(EXECUTION_ARN)
    assert token != client_token(EXECUTION_ARN + "x")
    assert 1 <= len(token) <= 36
    assert token.replace("-", "").isalnum()


def test_throttled_registry_is_transient() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_client_error("describe_model_package_group", "ThrottlingException", "slow", 400)
    request = RegisterRequest.model_validate(register_state())
    with stub, pytest.raises(TransientServiceError):
        register(request, SageMaker(client))


def _recheck(changed: bool) -> dict[str, Any]:
    newer = f"s3://{BUCKET}/runs/newer/train/job/output/model.tar.gz"
    return {
        "changed": changed,
        "evaluated_champion_uri": None,
        "champion_model_uri": newer if changed else None,
        "job_name": "recheck-1" if changed else None,
        "reused": False,
        "report_uri": REPORT.replace("/evaluate/", "/recheck/") if changed else None,
        "poll": {"status": "Completed", "attempt": 1, "wait_seconds": 1},
    }


def test_fresh_decision_against_a_newer_champion_updates_the_status(
    moto: None, context: Any
) -> None:
    # GIVEN a package registered Approved by the first gate
    first = RegisterOutput.model_validate(lambda_handler(register_state(True), context))
    # WHEN UpdateRegistration runs with the fresh decision (a newer champion won)
    event = register_state(False) | {"recheck": _recheck(True)}
    out = RegisterOutput.model_validate(lambda_handler(event, context))
    # THEN the same package is now Rejected, with the reasons as its approval description
    assert (out.model_package_arn, out.approval_status) == (first.model_package_arn, "Rejected")
    described = aws.sagemaker().describe_model_package(ModelPackageName=out.model_package_arn)
    assert described["ModelApprovalStatus"] == "Rejected"
    assert len(packages()) == 1


def test_a_plain_rerun_never_overrides_the_registered_status(moto: None, context: Any) -> None:
    # GIVEN a package registered Approved; a redrive brings a state without a changed champion
    lambda_handler(register_state(True), context)
    event = register_state(False) | {"recheck": _recheck(False)}
    out = RegisterOutput.model_validate(lambda_handler(event, context))
    # THEN the status a person (or the first gate) set is kept
    assert out.approval_status == "Approved"
